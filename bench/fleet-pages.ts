/**
 * The pages of bench/fleet (issue 15 §7): browsers in Debian's Chromium (playwright-core,
 * test/helpers/chromium.ts), signed in as an admin, open the fleet, containers, images and
 * a node page while the simulated nodes keep changing. Two figures per page:
 *
 *  - navigation to content: from `page.goto` to the page's first data row (a full load:
 *    the bundle from the browser's cache, the session, the live socket and the queries);
 *  - refetches: the tRPC queries the page sends (each query of a batched request counted)
 *    over a window of node changes, per browser and per node change — what a change on one
 *    node costs every browser that has a page open.
 *
 * The browsers are contexts of one Chromium process (each its own cookie jar, cache and
 * live socket): five Chromium processes next to 500 simulated nodes would measure the
 * machine's memory, not the console.
 *
 * Chromium runs in a network namespace of its own, with only a loopback, reaching the
 * console through a unix socket: on a machine shared with other agents (bridges and veths
 * come and go every few seconds) Chromium otherwise fails its navigations and fetches
 * with ERR_NETWORK_CHANGED, and the figures measure the neighbours.
 */
import { chmod, mkdtemp, rm, writeFile } from "node:fs/promises";
import { connect, createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium, type Browser, type BrowserContext, type Page, type Request } from "playwright-core";
import { CHROMIUM_ARGS } from "../test/helpers/chromium.ts";

export interface PageSpec {
  name: string;
  path: string;
  /** A selector that matches once the page shows its data. */
  content: string;
  /** The node the page is about (queries keyed by another node's id are counted as foreign). */
  nodeId?: string;
}

export interface PageFigures {
  name: string;
  /** Navigation to content, ms (a load that never showed content counts as contentTimeoutMs). */
  loads: number[];
  /** Loads that showed no content within contentTimeoutMs. */
  timeouts: number;
  /** Queries sent per browser during the window. */
  queriesPerBrowser: number[];
  /** Node changes made during the window (the whole fleet). */
  changes: number;
  windowMs: number;
  /**
   * A node page's: queries per browser in a window where only other nodes change, and in
   * one where only its own node changes, with the changes made in each.
   */
  split?: { othersQueries: number[]; othersChanges: number; ownQueries: number[]; ownChanges: number };
}

export interface PagesOptions {
  url: string;
  /** `name=value` of the admin's session cookie. */
  cookie: string;
  pages: PageSpec[];
  browsers: number;
  /** Full loads per page per browser. */
  samples: number;
  /** How long each page is watched for refetches (ms). */
  windowMs: number;
  /** How long a load may take to show content before it counts as never shown. */
  contentTimeoutMs: number;
  /** Node changes made so far (the caller keeps changing nodes in the background). */
  changeCount: () => number;
  /** Which nodes the caller changes: any (default), all but `nodeId`, or only `nodeId`. */
  focus: (mode: { only?: string; except?: string } | null) => void;
  checkInterrupted: () => void;
  log: (line: string) => void;
}

/** The queries of one tRPC request: `/api/trpc/a,b?batch=1&input={"0":…,"1":…}` is two. */
function queriesOf(req: Request): Array<{ path: string; nodeId?: string }> {
  const u = new URL(req.url());
  if (!u.pathname.startsWith("/api/trpc/") || req.method() !== "GET") return [];
  const paths = decodeURIComponent(u.pathname.slice("/api/trpc/".length)).split(",");
  let inputs: Record<string, { nodeId?: unknown } | undefined> = {};
  try {
    const raw = u.searchParams.get("input");
    if (raw) inputs = JSON.parse(raw) as typeof inputs;
  } catch {
    // an input we cannot read counts as a query without a node
  }
  return paths.map((path, i) => {
    const nodeId = inputs[String(i)]?.nodeId;
    return typeof nodeId === "string" ? { path, nodeId } : { path };
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Chromium in its own network namespace (root: `unshare --net`), where 127.0.0.1:<port> is
 * forwarded to the console's port through a unix socket. Returns the browser and a clean-up.
 */
async function isolatedChromium(consoleUrl: string): Promise<{ browser: Browser; close: () => Promise<void> }> {
  const u = new URL(consoleUrl);
  const dir = await mkdtemp(join(tmpdir(), "berth-bench-chromium-"));
  const sock = join(dir, "console.sock");
  const bridge: Server = createServer((c) => {
    const up = connect(Number(u.port), u.hostname);
    c.on("error", () => up.destroy());
    up.on("error", () => c.destroy());
    c.pipe(up).pipe(c);
  });
  await new Promise<void>((resolve, reject) => bridge.once("error", reject).listen(sock, resolve));
  const forward = join(dir, "forward.mjs");
  await writeFile(
    forward,
    `import { connect, createServer } from "node:net";
createServer((c) => {
  const up = connect(${JSON.stringify(sock)});
  c.on("error", () => up.destroy());
  up.on("error", () => c.destroy());
  c.pipe(up).pipe(c);
}).listen(${Number(u.port)}, "127.0.0.1");
// Chromium (which this shell became) is the parent: gone, so is the forwarder.
const parent = process.ppid;
setInterval(() => process.ppid !== parent && process.exit(0), 500);
`,
  );
  // Playwright talks to Chromium over fds 3 and 4: the forwarder must not hold them open.
  const wrapper = join(dir, "chromium");
  await writeFile(
    wrapper,
    `#!/bin/sh
exec unshare --net -- /bin/sh -c 'ip link set lo up && { ${JSON.stringify(process.execPath)} ${JSON.stringify(forward)} 3>&- 4>&- & } && sleep 0.3 && exec /usr/bin/chromium "$@"' chromium "$@"
`,
  );
  await chmod(wrapper, 0o755);
  const browser = await chromium.launch({ executablePath: wrapper, args: CHROMIUM_ARGS });
  return {
    browser,
    close: async () => {
      await browser.close();
      await new Promise<void>((r) => bridge.close(() => r()));
      await rm(dir, { recursive: true, force: true });
    },
  };
}

export async function measurePages(opts: PagesOptions): Promise<PageFigures[]> {
  const { browser, close } = await isolatedChromium(opts.url);
  try {
    const [name, ...rest] = opts.cookie.split("=");
    const contexts: BrowserContext[] = [];
    const pages: Page[] = [];
    const sent: Array<Array<{ t: number; path: string; nodeId?: string }>> = [];
    for (let b = 0; b < opts.browsers; b++) {
      const ctx = await browser.newContext({ baseURL: opts.url, viewport: { width: 1400, height: 900 } });
      await ctx.addCookies([{ name: name!, value: rest.join("="), url: opts.url }]);
      const page = await ctx.newPage();
      page.setDefaultTimeout(60_000);
      const log: Array<{ t: number; path: string; nodeId?: string }> = [];
      page.on("request", (r) => {
        for (const q of queriesOf(r)) log.push({ t: Date.now(), ...q });
      });
      contexts.push(ctx);
      pages.push(page);
      sent.push(log);
    }
    let retried = 0;
    // Warm-up: the bundles in each browser's cache.
    await Promise.all(
      pages.map(async (p) => {
        for (let attempt = 1; attempt <= 5; attempt++) {
          try {
            await p.goto(opts.pages[0]!.path);
            await p.locator(opts.pages[0]!.content).first().waitFor({ timeout: opts.contentTimeoutMs });
            break;
          } catch (e) {
            opts.log(`  warm-up load ${attempt}: ${(e as Error).message.split("\n")[0]}`);
            await sleep(250);
          }
        }
      }),
    );

    const figures: PageFigures[] = [];
    for (const spec of opts.pages) {
      opts.checkInterrupted();
      const loads: number[] = [];
      let timeouts = 0;
      await Promise.all(
        pages.map(async (page) => {
          for (let s = 0; s < opts.samples; s++) {
            opts.checkInterrupted();
            let start = performance.now();
            // Chromium drops a navigation when the machine's interfaces change (other agents
            // making bridges and veths here) and shows its error page: that load is made
            // again, timed from its retry.
            for (let attempt = 1; ; attempt++) {
              try {
                await page.goto(spec.path, { waitUntil: "commit" });
                await page.locator(spec.content).first().waitFor({ timeout: opts.contentTimeoutMs });
                break;
              } catch (e) {
                const dropped =
                  /ERR_NETWORK_CHANGED|chrome-error:|interrupted by another navigation/.test((e as Error).message) || page.url().startsWith("chrome-error:");
                if (!dropped && (e as Error).name === "TimeoutError") {
                  // A page that shows nothing for this long is a figure (counted, at the limit), not a failed run.
                  timeouts += 1;
                  break;
                }
                if (attempt >= 30 || !dropped) throw e;
                retried += 1;
                await sleep(250); // Chromium's own reload of its error page settles first
                start = performance.now();
              }
            }
            loads.push(performance.now() - start);
          }
        }),
      );
      // The pages stay open: what do they fetch while the fleet changes?
      const watch = async (windowMs: number) => {
        await sleep(1_000); // what the last load or the previous window started
        const from = Date.now();
        const changes0 = opts.changeCount();
        await sleep(windowMs);
        const to = Date.now();
        return { queries: sent.map((log) => log.filter((q) => q.t >= from && q.t < to).length), changes: opts.changeCount() - changes0, windowMs: to - from };
      };
      const all = await watch(opts.windowMs);
      const f: PageFigures = { name: spec.name, loads, timeouts, queriesPerBrowser: all.queries, changes: all.changes, windowMs: all.windowMs };
      if (spec.nodeId) {
        try {
          opts.focus({ except: spec.nodeId });
          const others = await watch(opts.windowMs / 2);
          opts.focus({ only: spec.nodeId });
          const own = await watch(opts.windowMs / 2);
          f.split = { othersQueries: others.queries, othersChanges: others.changes, ownQueries: own.queries, ownChanges: own.changes };
        } finally {
          opts.focus(null);
        }
      }
      figures.push(f);
      opts.log(
        `  ${spec.name}: ${loads.length} loads (${retried} navigations retried after ERR_NETWORK_CHANGED so far); ${f.changes} node changes in ${Math.round(f.windowMs / 1000)} s, ${f.queriesPerBrowser.join("/")} queries per browser`,
      );
    }
    return figures;
  } finally {
    await close();
  }
}
