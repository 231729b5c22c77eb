/**
 * The Dockerfile, parsed by `dockerfile-ast` (the parser of the Docker language
 * server) into what the builder dispatches: meta ARGs before the first FROM,
 * then stages, each a FROM and its instructions. Line continuations, comments
 * inside continuations and the `escape` directive are the library's; the
 * checks Docker's parser makes (unknown instructions and flags, JSON-only
 * SHELL, ONBUILD limits) are made here, each error naming its line.
 */
import { DockerfileParser, type Instruction } from "dockerfile-ast";
import { invalidArgument } from "../errors.ts";

export interface DockerfileInstruction {
  /** 1-based line of the instruction's first line. */
  line: number;
  /** Upper-cased keyword: RUN, COPY… */
  keyword: string;
  /** The instruction as Docker prints it in `Step N/M : …`: continuations folded, comments dropped. */
  original: string;
  /** `--name=value` flags (value null for a bare `--name`). */
  flags: Map<string, string | null>;
  /** The arguments after the flags, continuations folded. */
  args: string;
  /** The arguments as a JSON array of strings (exec form), when they are one. */
  json?: string[];
  /** ENV, LABEL, ARG: name and raw (still quoted) value, null when the value is absent. */
  properties?: Array<{ name: string; raw: string | null }>;
}

export interface DockerfileStage {
  from: DockerfileInstruction;
  commands: DockerfileInstruction[];
}

export interface ParsedDockerfile {
  escape: string;
  metaArgs: DockerfileInstruction[];
  stages: DockerfileStage[];
}

const KNOWN = new Set([
  "ADD",
  "ARG",
  "CMD",
  "COPY",
  "ENTRYPOINT",
  "ENV",
  "EXPOSE",
  "FROM",
  "HEALTHCHECK",
  "LABEL",
  "MAINTAINER",
  "ONBUILD",
  "RUN",
  "SHELL",
  "STOPSIGNAL",
  "USER",
  "VOLUME",
  "WORKDIR",
]);

/** Flags each instruction takes in the classic builder. */
const FLAGS: Record<string, string[]> = {
  FROM: ["platform"],
  COPY: ["from", "chown", "chmod"],
  ADD: ["chown", "chmod"],
  HEALTHCHECK: ["interval", "timeout", "start-period", "start-interval", "retries"],
};

/** A Dockerfile error with its line: `message` is Docker's daemon text; a door with its own editor may say `Dockerfile:<line>: <reason>`. */
export type DockerfileError = Error & { dockerfileLine: number; reason: string };

export function parseError(line: number, message: string): DockerfileError {
  return Object.assign(invalidArgument(`dockerfile parse error on line ${line}: ${message}`), { dockerfileLine: line, reason: message });
}

export function isDockerfileError(e: unknown): e is DockerfileError {
  return e instanceof Error && typeof (e as Partial<DockerfileError>).dockerfileLine === "number" && typeof (e as Partial<DockerfileError>).reason === "string";
}

export function parseDockerfile(text: string, name = "Dockerfile"): ParsedDockerfile {
  if (text.trim() === "") throw invalidArgument(`the Dockerfile (${name}) cannot be empty`);
  const df = DockerfileParser.parse(text);
  const escape = df.getEscapeCharacter();
  const lines = text.split("\n");
  const metaArgs: DockerfileInstruction[] = [];
  const stages: DockerfileStage[] = [];
  const instructions = df.getInstructions();
  if (instructions.length === 0) throw invalidArgument(`file with no instructions`);
  for (const ins of instructions) {
    const parsed = toInstruction(ins, lines, escape);
    if (parsed.keyword === "FROM") {
      stages.push({ from: parsed, commands: [] });
      continue;
    }
    const stage = stages[stages.length - 1];
    if (!stage) {
      if (parsed.keyword !== "ARG") throw parseError(parsed.line, `no build stage in current context`);
      metaArgs.push(parsed);
      continue;
    }
    stage.commands.push(parsed);
  }
  if (stages.length === 0) throw invalidArgument(`no build stage in current context`);
  return { escape, metaArgs, stages };
}

/** An ONBUILD trigger ("RUN echo hi"), parsed as a one-line Dockerfile. */
export function parseTrigger(trigger: string, line: number): DockerfileInstruction {
  const df = DockerfileParser.parse(trigger);
  const ins = df.getInstructions()[0];
  if (!ins) throw parseError(line, `invalid ONBUILD trigger: ${JSON.stringify(trigger)}`);
  return { ...toInstruction(ins, trigger.split("\n"), df.getEscapeCharacter()), line };
}

function toInstruction(ins: Instruction, lines: string[], escape: string): DockerfileInstruction {
  const range = ins.getRange();
  const line = range.start.line + 1;
  const keyword = ins.getKeyword().toUpperCase();
  if (!KNOWN.has(keyword)) throw parseError(line, `unknown instruction: ${ins.getInstruction()}`);
  const flags = new Map<string, string | null>();
  const withFlags = ins as Instruction & { getFlags?: () => Array<{ getName(): string; getValue(): string | null }> };
  if (withFlags.getFlags) {
    for (const f of withFlags.getFlags()) {
      if (!(FLAGS[keyword] ?? []).includes(f.getName())) throw parseError(line, `unknown flag: ${f.getName()}`);
      flags.set(f.getName(), f.getValue());
    }
  }
  const args = (ins.getArgumentsContent() ?? "").trim();
  const original = fold(lines.slice(range.start.line, range.end.line + 1), escape).trim();
  const out: DockerfileInstruction = { line, keyword, original, flags, args };
  if (args.startsWith("[")) {
    try {
      const v: unknown = JSON.parse(args);
      if (Array.isArray(v) && v.every((x) => typeof x === "string")) out.json = v as string[];
    } catch {
      // not JSON: shell form, as Docker's parser falls back to
    }
  }
  if (keyword === "ENV" || keyword === "LABEL" || keyword === "ARG") {
    const withProps = ins as Instruction & { getProperties(): Array<{ getName(): string; getValue(): string | null }> };
    out.properties = withProps.getProperties().map((p) => ({ name: p.getName(), raw: p.getValue() }));
    if (out.properties.length === 0) throw parseError(line, `${keyword} requires at least one argument`);
    if (keyword === "ENV" || keyword === "LABEL") {
      for (const p of out.properties) if (p.raw === null && keyword === "ENV") throw parseError(line, `ENV must have two arguments`);
    }
  }
  if (keyword === "SHELL" && !out.json) throw parseError(line, `SHELL requires the arguments to be in JSON form`);
  if (keyword === "ONBUILD") {
    const trigger = args.split(/\s+/)[0]?.toUpperCase() ?? "";
    if (trigger === "") throw parseError(line, `ONBUILD requires at least one argument`);
    if (trigger === "ONBUILD") throw parseError(line, `Chaining ONBUILD via \`ONBUILD ONBUILD\` isn't allowed`);
    if (trigger === "FROM" || trigger === "MAINTAINER") throw parseError(line, `${trigger} isn't allowed as an ONBUILD trigger`);
    if (!KNOWN.has(trigger)) throw parseError(line, `unknown instruction: ${trigger}`);
  }
  const needsArgs = !["ONBUILD"].includes(keyword);
  if (needsArgs && args === "" && !(keyword === "CMD" || keyword === "ENTRYPOINT")) {
    throw parseError(line, `${keyword} requires at least one argument`);
  }
  return out;
}

/** Joins continuation lines as Docker does: the escape at a line's end and the newline go, comment lines inside go. */
function fold(raw: string[], escape: string): string {
  let out = "";
  for (let i = 0; i < raw.length; i++) {
    let l = raw[i]!.replace(/\r$/, "");
    if (i > 0 && /^\s*#/.test(l)) continue;
    const trimmed = l.replace(/\s+$/, "");
    if (i < raw.length - 1 && trimmed.endsWith(escape)) {
      l = trimmed.slice(0, -escape.length);
      out += l;
      continue;
    }
    out += l;
  }
  return out;
}
