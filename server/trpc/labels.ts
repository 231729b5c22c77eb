/** Label maps in procedure inputs: each bad key named in its own message (zod's record says only "Invalid key in record"). */
import { z } from "zod";

export function labelsSchema(opts: { key: RegExp; keyRule: string; maxKey: number; maxValue: number; maxLabels: number }) {
  return z.record(z.string(), z.string().trim().max(opts.maxValue, `a label value has at most ${opts.maxValue} characters`)).superRefine((labels, ctx) => {
    const keys = Object.keys(labels);
    if (keys.length > opts.maxLabels) ctx.addIssue({ code: "custom", message: `at most ${opts.maxLabels} labels` });
    for (const k of keys) {
      if (!k.trim()) ctx.addIssue({ code: "custom", path: [k], message: "a label needs a key" });
      else if (k.length > opts.maxKey || !opts.key.test(k))
        ctx.addIssue({ code: "custom", path: [k], message: `label key ${JSON.stringify(k)}: ${opts.keyRule}` });
    }
  });
}
