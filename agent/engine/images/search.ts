import { invalidArgument } from "../errors.ts";
import type { Credentials, RegistryClient } from "../registry/client.ts";

export interface SearchResult {
  name: string;
  description: string;
  starCount: number;
  isOfficial: boolean;
  isAutomated: boolean;
}

/**
 * `docker search`: the catalogs of the configured registries (insecure registries and
 * mirrors) matched against the term; "HOST[:PORT]/TERM" searches that registry only.
 */
export async function searchRegistries(
  registry: Pick<RegistryClient, "catalog">,
  configured: readonly string[],
  term: string,
  credentialsFor: (domain: string) => Credentials | undefined,
  limit = 25,
): Promise<SearchResult[]> {
  if (!term) throw invalidArgument("search term must not be empty");
  let domains = [...new Set(configured)];
  let needle = term;
  const slash = term.indexOf("/");
  if (slash > 0) {
    const first = term.slice(0, slash);
    if (first.includes(".") || first.includes(":") || first === "localhost") {
      domains = [first];
      needle = term.slice(slash + 1);
    }
  }
  const results: SearchResult[] = [];
  const errors: string[] = [];
  for (const domain of domains) {
    let repos: string[];
    try {
      repos = await registry.catalog(domain, credentialsFor(domain));
    } catch (e) {
      errors.push(`${domain}: ${(e as Error).message}`);
      continue;
    }
    for (const repo of repos) {
      if (!repo.toLowerCase().includes(needle.toLowerCase())) continue;
      results.push({ name: `${domain}/${repo}`, description: "", starCount: 0, isOfficial: false, isAutomated: false });
    }
  }
  if (results.length === 0 && errors.length > 0 && errors.length === domains.length) {
    throw invalidArgument(`search failed: ${errors.join("; ")}`);
  }
  return results.sort((a, b) => a.name.localeCompare(b.name)).slice(0, limit);
}

/** Registry hosts named by the agent's config ("http://127.0.0.1:5000" → "127.0.0.1:5000"). */
export function configuredRegistryDomains(insecure: readonly string[], mirrors: readonly string[]): string[] {
  return [...insecure, ...mirrors.map((m) => new URL(m).host)];
}
