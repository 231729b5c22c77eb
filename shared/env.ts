/**
 * Environment lists ("KEY=value" strings) merged as Docker merges them. One module, so
 * that what `docker inspect` shows, what the process gets and what `docker commit`
 * records agree.
 *
 * Docker keeps a bare `KEY` (no "="; the docker CLI sends `-e KEY` that way when KEY is
 * not set in its own environment) in the container's Config.Env and in a committed image;
 * when the process environment is built, a bare `KEY` unsets KEY.
 */

/** Docker's PATH for a process whose environment has none (`oci.DefaultPathEnv`). */
export const DEFAULT_PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/** "KEY=value" → "KEY"; a bare "KEY" is its own key. */
export function envKey(entry: string): string {
  const i = entry.indexOf("=");
  return i < 0 ? entry : entry.slice(0, i);
}

/**
 * Docker's `ReplaceOrAppendEnvValues`: each of `overrides`, in order, replaces the entry
 * of its key in place or is appended; a bare `KEY` removes KEY. Later overrides win over
 * earlier ones. Used for the process environment (Docker's defaults, then Config.Env),
 * for an exec's `-e`, and for the ENV instruction of `--change`.
 */
export function mergeEnv(base: readonly string[], overrides: readonly string[]): string[] {
  const out = new Map<string, string | undefined>();
  for (const e of base) out.set(envKey(e), e);
  for (const e of overrides) {
    const key = envKey(e);
    if (e.includes("=")) out.set(key, e);
    else if (out.has(key)) out.set(key, undefined);
  }
  return [...out.values()].filter((e): e is string => e !== undefined);
}

/**
 * A container's Config.Env from its image's Env and the create request's (Docker's
 * `merge` at create): the request's entries as given (bare `KEY` kept), then the image's
 * entries whose key the request does not name. `docker commit` records this list.
 */
export function containerEnv(imageEnv: readonly string[] | null | undefined, createEnv: readonly string[] | null | undefined): string[] {
  const create = createEnv ?? [];
  if (create.length === 0) return [...(imageEnv ?? [])];
  const named = new Set(create.map(envKey));
  return [...create, ...(imageEnv ?? []).filter((e) => !named.has(envKey(e)))];
}

/**
 * The environment a container's process starts with (Docker's `CreateDaemonEnvironment`):
 * PATH (Docker's default), HOSTNAME and, with a TTY, TERM=xterm, overridden by `configEnv`
 * (the container's Config.Env, see containerEnv) as mergeEnv does.
 */
export function processEnv(configEnv: readonly string[], opts: { hostname: string; tty: boolean }): string[] {
  const defaults = [DEFAULT_PATH_ENV, `HOSTNAME=${opts.hostname}`, ...(opts.tty ? ["TERM=xterm"] : [])];
  return mergeEnv(defaults, configEnv);
}
