/**
 * Variable substitution in Dockerfile instructions, after BuildKit's
 * `frontend/dockerfile/shell/lex.go` (which Docker's builders share): quotes
 * and the escape character are processed, `$VAR`, `${VAR}`, `${VAR:-word}`,
 * `${VAR-word}`, `${VAR:+word}`, `${VAR+word}` and `${VAR:?message}` are
 * replaced from the build's environment (ENV plus declared ARGs). The shell
 * itself never runs: RUN, CMD and ENTRYPOINT are not expanded here.
 */
import { invalidArgument } from "../errors.ts";

export type BuildEnv = ReadonlyMap<string, string | undefined>;

interface Piece {
  text: string;
  /** Unquoted text from a variable: split into words at whitespace. */
  split: boolean;
  /** Unquoted whitespace in the source: ends a word. */
  boundary?: boolean;
}

class Scanner {
  pos = 0;
  constructor(
    readonly src: string,
    readonly escape: string,
  ) {}
  peek(): string | undefined {
    return this.src[this.pos];
  }
  next(): string | undefined {
    return this.src[this.pos++];
  }
  get done(): boolean {
    return this.pos >= this.src.length;
  }
}

/** One word, quotes removed, variables substituted (ENV values, WORKDIR, USER, labels…). */
export function processWord(word: string, env: BuildEnv, escape = "\\"): string {
  return lex(word, env, escape)
    .map((p) => p.text)
    .join("");
}

/** Whitespace-separated words, with quoting (COPY sources, EXPOSE, VOLUME…). */
export function processWords(text: string, env: BuildEnv, escape = "\\"): string[] {
  const words: string[] = [];
  let current = "";
  let has = false;
  for (const piece of lex(text, env, escape, true)) {
    if (piece.boundary) {
      if (has) words.push(current);
      current = "";
      has = false;
      continue;
    }
    if (piece.split) {
      const parts = piece.text.split(/[ \t\r\n]+/);
      parts.forEach((part, i) => {
        if (i > 0) {
          if (has) words.push(current);
          current = "";
          has = false;
        }
        if (part !== "") {
          current += part;
          has = true;
        }
      });
      continue;
    }
    current += piece.text;
    has = true;
  }
  if (has) words.push(current);
  return words;
}

function lex(src: string, env: BuildEnv, escape: string, splitWords = false): Piece[] {
  const s = new Scanner(src, escape);
  const out: Piece[] = [];
  while (!s.done) {
    const ch = s.peek()!;
    if (splitWords && /[ \t\r\n]/.test(ch)) {
      s.next();
      out.push({ text: "", split: false, boundary: true });
      continue;
    }
    if (ch === escape) {
      s.next();
      const n = s.next();
      if (n !== undefined) out.push({ text: n, split: false });
      else out.push({ text: escape, split: false });
      continue;
    }
    if (ch === "'") {
      s.next();
      let text = "";
      for (;;) {
        const c = s.next();
        if (c === undefined) throw invalidArgument(`unexpected end of statement while looking for matching single-quote`);
        if (c === "'") break;
        text += c;
      }
      out.push({ text, split: false });
      continue;
    }
    if (ch === '"') {
      s.next();
      let text = "";
      for (;;) {
        const c = s.peek();
        if (c === undefined) throw invalidArgument(`unexpected end of statement while looking for matching double-quote`);
        if (c === '"') {
          s.next();
          break;
        }
        if (c === "$") {
          text += dollar(s, env);
          continue;
        }
        if (c === escape) {
          s.next();
          const n = s.next();
          if (n === undefined) throw invalidArgument(`unexpected end of statement while looking for matching double-quote`);
          // In double quotes the escape character only escapes these, as in a POSIX shell.
          text += n === '"' || n === "$" || n === escape ? n : escape + n;
          continue;
        }
        text += s.next();
      }
      out.push({ text, split: false });
      continue;
    }
    if (ch === "$") {
      out.push({ text: dollar(s, env), split: splitWords });
      continue;
    }
    out.push({ text: s.next()!, split: false });
  }
  return out;
}

function dollar(s: Scanner, env: BuildEnv): string {
  s.next(); // $
  const c = s.peek();
  if (c === "{") {
    s.next();
    const name = readName(s);
    if (name === "") throw invalidArgument(`bad substitution: missing variable name in \${...}`);
    const op = s.peek();
    if (op === "}") {
      s.next();
      return env.get(name) ?? "";
    }
    let modifier = s.next()!;
    if (modifier === ":") {
      const m2 = s.next();
      if (m2 === undefined) throw invalidArgument(`unexpected end of statement in \${${name}`);
      modifier += m2;
    }
    const word = readUntilBrace(s, env);
    const value = env.get(name);
    switch (modifier) {
      case ":-":
        return value === undefined || value === "" ? word : value;
      case "-":
        return value === undefined ? word : value;
      case ":+":
        return value === undefined || value === "" ? "" : word;
      case "+":
        return value === undefined ? "" : word;
      case ":?":
      case "?":
        if (value === undefined || (modifier === ":?" && value === "")) throw invalidArgument(`${name}: ${word || "is not allowed to be unset"}`);
        return value;
      default:
        throw invalidArgument(`unsupported modifier (${modifier}) in substitution`);
    }
  }
  const name = readName(s);
  if (name === "") return "$";
  return env.get(name) ?? "";
}

function readName(s: Scanner): string {
  let name = "";
  const first = s.peek();
  if (first !== undefined && /[0-9]/.test(first)) {
    // $1…: positional parameters are always empty in a Dockerfile.
    s.next();
    return "\0positional";
  }
  while (!s.done && /[A-Za-z0-9_]/.test(s.peek()!)) name += s.next();
  return name;
}

function readUntilBrace(s: Scanner, env: BuildEnv): string {
  let text = "";
  for (;;) {
    const c = s.peek();
    if (c === undefined) throw invalidArgument("missing '}' in variable substitution");
    if (c === "}") {
      s.next();
      return text;
    }
    if (c === "$") {
      text += dollar(s, env);
      continue;
    }
    if (c === s.escape) {
      s.next();
      text += s.next() ?? "";
      continue;
    }
    text += s.next();
  }
}
