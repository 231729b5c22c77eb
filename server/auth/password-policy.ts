/**
 * What a new password must be: at least MIN_PASSWORD_LENGTH characters and not easy to
 * guess by zxcvbn's estimate (@zxcvbn-ts: dictionaries of common passwords, names and
 * words, keyboard walks, repeats, sequences, dates, l33t), with the user's own email
 * and name counted as known words. `aaaaaaaaaaaa`, `password1234` and `qwertyuiop12`
 * are long enough and still refused.
 */
import { ZxcvbnFactory } from "@zxcvbn-ts/core";
import * as common from "@zxcvbn-ts/language-common";
import * as english from "@zxcvbn-ts/language-en";

export const MIN_PASSWORD_LENGTH = 12;
/** zxcvbn score 0..4; 3 is "safely unguessable: moderate protection from offline slow-hash attacks". */
export const MIN_PASSWORD_SCORE = 3;

let estimator: ZxcvbnFactory | undefined;
function zxcvbn(): ZxcvbnFactory {
  estimator ??= new ZxcvbnFactory({
    dictionary: { ...common.dictionary, ...english.dictionary },
    graphs: common.adjacencyGraphs,
    translations: english.translations,
    useLevenshteinDistance: true,
  });
  return estimator;
}

/** Words of the user's own that a password should not be built from. */
function contextWords(context: { email?: string; name?: string }): string[] {
  const words = ["berth", "console", "admin"];
  if (context.email) words.push(context.email, ...context.email.split(/[@.+_-]/));
  if (context.name) words.push(...context.name.split(/\s+/));
  return words.filter((w) => w.length >= 3).map((w) => w.toLowerCase());
}

/** Why `password` is refused as a new password (one sentence for the field), or null when it is good. */
export async function passwordWeakness(password: string, context: { email?: string; name?: string } = {}): Promise<string | null> {
  if ([...password].length < MIN_PASSWORD_LENGTH) return `the password needs at least ${MIN_PASSWORD_LENGTH} characters`;
  const r = await zxcvbn().check(password, contextWords(context));
  if (r.score >= MIN_PASSWORD_SCORE) return null;
  const why = [r.feedback.warning, ...r.feedback.suggestions].filter((s): s is string => !!s);
  return `the password is too easy to guess${why.length ? `: ${why.join(" ")}` : ""}`;
}
