/**
 * The systemd unit as the installer writes it, and how to run its ExecStart line without
 * systemd (test hosts, containers: where PID 1 is not systemd).
 */

/** The unit template's placeholder for the install prefix (see packaging/berth-agent.service). */
export const PREFIX_PLACEHOLDER = "@PREFIX@";

/** Fills in the prefix: "" for "/", so paths read /usr/lib/…, /etc/berth/…. */
export function renderUnit(template: string, prefix: string): string {
  return template.split(PREFIX_PLACEHOLDER).join(prefix === "/" ? "" : prefix);
}

export interface ServiceCommand {
  /** The ExecStart line split into words as systemd does (argv[0] is the program). */
  argv: string[];
  /** The unit's Environment= assignments. */
  env: Record<string, string>;
}

/** Splits a systemd command line: whitespace-separated words, "double" and 'single' quotes, backslash escapes. */
export function splitSystemdWords(line: string): string[] {
  const words: string[] = [];
  let i = 0;
  while (i < line.length) {
    while (i < line.length && /\s/.test(line[i]!)) i++;
    if (i >= line.length) break;
    let word = "";
    let quote: string | undefined;
    if (line[i] === '"' || line[i] === "'") quote = line[i++];
    for (; i < line.length; i++) {
      const c = line[i]!;
      if (quote ? c === quote : /\s/.test(c)) {
        i++;
        break;
      }
      if (c === "\\" && i + 1 < line.length) {
        word += line[++i];
        continue;
      }
      word += c;
    }
    words.push(word);
  }
  return words;
}

/**
 * The command systemd would start for this unit: ExecStart (with its `-@:+!` prefixes
 * dropped) and Environment=. Lets a host without systemd, or a test, start the agent exactly
 * as the unit says.
 * @throws Error when the unit has no ExecStart.
 */
export function serviceCommand(unitText: string): ServiceCommand {
  let section = "";
  let exec: string | undefined;
  const env: Record<string, string> = {};
  for (const raw of unitText.split("\n")) {
    const line = raw.trim();
    if (line === "" || line.startsWith("#") || line.startsWith(";")) continue;
    const sec = /^\[(.+)\]$/.exec(line);
    if (sec) {
      section = sec[1]!;
      continue;
    }
    if (section !== "Service") continue;
    const eq = line.indexOf("=");
    if (eq < 0) continue;
    const key = line.slice(0, eq).trim();
    const value = line.slice(eq + 1).trim();
    if (key === "ExecStart") exec = value;
    else if (key === "Environment") {
      for (const word of splitSystemdWords(value)) {
        const i = word.indexOf("=");
        if (i > 0) env[word.slice(0, i)] = word.slice(i + 1);
      }
    }
  }
  if (!exec) throw new Error("the unit has no ExecStart= in its [Service] section");
  const argv = splitSystemdWords(exec.replace(/^[-@:+!]+/, ""));
  return { argv, env };
}
