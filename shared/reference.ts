/**
 * Image references, parsed and normalised exactly as Docker does
 * (github.com/distribution/reference: ParseNormalizedNamed, TagNameOnly,
 * FamiliarString, FamiliarName).
 *
 * Grammar (from reference.go):
 *
 *   reference        := name [ ":" tag ] [ "@" digest ]
 *   name             := [domain '/'] remote-name
 *   domain           := host [':' port-number]
 *   host             := domain-name | IPv4address | \[ IPv6address \]
 *   domain-name      := domain-component ['.' domain-component]*
 *   domain-component := /([a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])/
 *   port-number      := /[0-9]+/
 *   path-component   := alpha-numeric [separator alpha-numeric]*
 *   path             := path-component ['/' path-component]*
 *   alpha-numeric    := /[a-z0-9]+/
 *   separator        := /[_.]|__|[-]+/
 *   tag              := /[\w][\w.-]{0,127}/
 *   digest           := algorithm ":" hex   (validated like go-digest: sha256/sha384/sha512, exact length)
 *
 * A parsed reference is plain data: `{ domain, path, tag?, digest? }`, with
 * Docker Hub names carrying domain "docker.io" and the "library/" prefix for
 * official images ("busybox" → docker.io/library/busybox).
 */
import { invalidArgument } from "./errors.ts";

export interface ImageReference {
  /** Registry host[:port]; "docker.io" for Docker Hub names. */
  domain: string;
  /** Repository path inside the registry, e.g. "library/busybox". */
  path: string;
  tag?: string;
  digest?: string;
}

const DEFAULT_DOMAIN = "docker.io";
const LEGACY_DEFAULT_DOMAIN = "index.docker.io";
const OFFICIAL_REPO_PREFIX = "library/";
const DEFAULT_TAG = "latest";
const LOCALHOST = "localhost";

/** Maximum length of the repository path (RepositoryNameTotalLengthMax). */
export const REPOSITORY_NAME_TOTAL_LENGTH_MAX = 255;

// --- regular expressions, built the way regexp.go builds them -------------

const alphanumeric = "[a-z0-9]+";
const separator = "(?:[._]|__|[-]+)";
const domainNameComponent = "(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])";
const optionalPort = "(?::[0-9]+)?";
const tagPat = "[\\w][\\w.-]{0,127}";
const digestPat = "[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*[:][0-9A-Fa-f]{32,}";
const identifier = "([a-f0-9]{64})";
const ipv6address = "\\[(?:[a-fA-F0-9:]+)\\]";
const domainName = `${domainNameComponent}(?:\\.${domainNameComponent})*`;
const host = `(?:${domainName}|${ipv6address})`;
const domainAndPort = host + optionalPort;
const pathComponent = `${alphanumeric}(?:${separator}${alphanumeric})*`;
const remoteName = `${pathComponent}(?:/${pathComponent})*`;
const namePat = `(?:${domainAndPort}/)?${remoteName}`;

const referenceRegexp = new RegExp(`^(${namePat})(?::(${tagPat}))?(?:@(${digestPat}))?$`);
const anchoredNameRegexp = new RegExp(`^(?:(${domainAndPort})/)?(${remoteName})$`);
const anchoredIdentifierRegexp = new RegExp(`^${identifier}$`);
const anchoredTagRegexp = new RegExp(`^${tagPat}$`);

// go-digest: the registered algorithms and their hex lengths.
const digestAlgorithms: Record<string, number> = { sha256: 64, sha384: 96, sha512: 128 };
const digestAnchored = /^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$/;

/**
 * Validates a digest string as go-digest's Digest.Validate does.
 * @returns the error message, or undefined when valid.
 */
function validateDigest(s: string): string | undefined {
  const i = s.indexOf(":");
  if (i <= 0 || i + 1 === s.length) return "invalid checksum digest format";
  const algorithm = s.slice(0, i);
  const encoded = s.slice(i + 1);
  const size = digestAlgorithms[algorithm];
  if (size === undefined) {
    if (!digestAnchored.test(s)) return "invalid checksum digest format";
    return "unsupported digest algorithm";
  }
  if (encoded.length !== size) return "invalid checksum digest length";
  if (!/^[a-f0-9]+$/.test(encoded)) return "invalid checksum digest format";
  return undefined;
}

/** splitDockerDomain from normalize.go: picks the registry domain out of a familiar name. */
function splitDockerDomain(name: string): { domain: string; remainder: string } {
  const slash = name.indexOf("/");
  if (slash < 0) return { domain: DEFAULT_DOMAIN, remainder: OFFICIAL_REPO_PREFIX + name };
  const maybeDomain = name.slice(0, slash);
  const maybeRemote = name.slice(slash + 1);
  let domain: string;
  let remainder: string;
  if (maybeDomain === LOCALHOST) {
    domain = maybeDomain;
    remainder = maybeRemote;
  } else if (maybeDomain === LEGACY_DEFAULT_DOMAIN) {
    domain = DEFAULT_DOMAIN;
    remainder = maybeRemote;
  } else if (maybeDomain.includes(".") || maybeDomain.includes(":")) {
    domain = maybeDomain;
    remainder = maybeRemote;
  } else if (maybeDomain.toLowerCase() !== maybeDomain) {
    // Uppercase namespaces are not allowed, so an uppercase first element is a domain.
    domain = maybeDomain;
    remainder = maybeRemote;
  } else {
    domain = DEFAULT_DOMAIN;
    remainder = name;
  }
  if (domain === DEFAULT_DOMAIN && !remainder.includes("/")) remainder = OFFICIAL_REPO_PREFIX + remainder;
  return { domain, remainder };
}

/**
 * reference.Parse on an already domain-qualified string.
 * @throws EngineError(InvalidArgument) with the reference package's wording
 */
function parseQualified(s: string): ImageReference {
  if (s === "") throw invalidArgument("repository name must have at least one component");
  const m = referenceRegexp.exec(s);
  if (!m) {
    const lower = s.toLowerCase();
    if (lower !== s && referenceRegexp.test(lower)) throw invalidArgument("repository name must be lowercase");
    throw invalidArgument("invalid reference format");
  }
  const name = m[1] ?? "";
  const nm = anchoredNameRegexp.exec(name);
  const domain = nm?.[1] ?? "";
  const path = nm ? (nm[2] ?? "") : name;
  if (path.length > REPOSITORY_NAME_TOTAL_LENGTH_MAX) {
    throw invalidArgument(`repository name must not be more than ${REPOSITORY_NAME_TOTAL_LENGTH_MAX} characters`);
  }
  const ref: ImageReference = { domain, path };
  if (m[2]) ref.tag = m[2];
  if (m[3]) {
    const err = validateDigest(m[3]);
    if (err) throw invalidArgument(err);
    ref.digest = m[3];
  }
  return ref;
}

/**
 * Parses a reference the way `docker pull` does (ParseNormalizedNamed):
 * "busybox" → docker.io/library/busybox (no tag is added; see withDefaultTag),
 * "host:5000/a/b:t", "a@sha256:…", "a:t@sha256:…".
 * @throws EngineError(InvalidArgument) "invalid reference format",
 *   "invalid reference format: repository name (library/Busybox) must be lowercase",
 *   "invalid repository name (<64 hex>), cannot specify 64-byte hexadecimal strings", …
 */
export function parseNormalizedReference(s: string): ImageReference {
  if (anchoredIdentifierRegexp.test(s)) {
    throw invalidArgument(`invalid repository name (${s}), cannot specify 64-byte hexadecimal strings`);
  }
  const { domain, remainder } = splitDockerDomain(s);
  const colon = remainder.indexOf(":");
  const remote = colon > -1 ? remainder.slice(0, colon) : remainder;
  if (remote.toLowerCase() !== remote) {
    throw invalidArgument(`invalid reference format: repository name (${remote}) must be lowercase`);
  }
  const ref = parseQualified(`${domain}/${remainder}`);
  // A qualified string always has a name (the domain part cannot be empty here).
  return ref;
}

/** Adds the tag "latest" when the reference has neither tag nor digest (TagNameOnly). */
export function withDefaultTag(r: ImageReference): ImageReference {
  if (r.tag !== undefined || r.digest !== undefined) return r;
  return { ...r, tag: DEFAULT_TAG };
}

/** The repository in familiar form: "busybox", "user/app", "127.0.0.1:5000/x/y" (FamiliarName). */
export function familiarName(r: ImageReference): string {
  if (r.domain === DEFAULT_DOMAIN) {
    if (r.path.startsWith(OFFICIAL_REPO_PREFIX)) {
      const rest = r.path.slice(OFFICIAL_REPO_PREFIX.length);
      if (!rest.includes("/")) return rest;
    }
    return r.path;
  }
  return r.domain === "" ? r.path : `${r.domain}/${r.path}`;
}

/** The whole reference in familiar form: "busybox:latest", "user/app@sha256:…" (FamiliarString). */
export function familiarString(r: ImageReference): string {
  return familiarName(r) + suffix(r);
}

/** The canonical repository name: "docker.io/library/busybox". */
export function fullName(r: ImageReference): string {
  return r.domain === "" ? r.path : `${r.domain}/${r.path}`;
}

/** The canonical reference string: "docker.io/library/busybox:latest" (reference.String()). */
export function canonicalString(r: ImageReference): string {
  return fullName(r) + suffix(r);
}

function suffix(r: ImageReference): string {
  return (r.tag !== undefined ? `:${r.tag}` : "") + (r.digest !== undefined ? `@${r.digest}` : "");
}

/** True for a well-formed sha256 digest: "sha256:" followed by 64 lowercase hex digits. */
export function isDigest(s: string): boolean {
  return /^sha256:[a-f0-9]{64}$/.test(s);
}

/** True for a valid tag (`[\w][\w.-]{0,127}`). */
export function isValidTag(s: string): boolean {
  return anchoredTagRegexp.test(s);
}

/**
 * True when `s` could be an image ID or an ID prefix: 1..64 lowercase hex
 * digits, optionally after "sha256:". Docker tries an ID-prefix lookup first
 * for such strings before treating them as a reference.
 */
export function looksLikeImageId(s: string): boolean {
  return /^(?:sha256:)?[a-f0-9]{1,64}$/.test(s);
}
