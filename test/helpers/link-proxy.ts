/**
 * A TCP proxy between an agent and the console that can cut the line the way a network
 * does: open connections stop carrying data without anyone being told (so both ends
 * must notice by their heartbeats), and new connections are refused until restored.
 */
import { createServer as createNetServer, connect as netConnect, type Socket as NetSocket } from "node:net";

export interface LinkProxy {
  url: string;
  /** The line goes dead: open connections stop carrying data (nobody is told), new ones are refused. */
  cut(): void;
  restore(): void;
  close(): Promise<void>;
}

export async function startLinkProxy(targetPort: () => number): Promise<LinkProxy> {
  let down = false;
  const pairs = new Set<{ client: NetSocket; upstream: NetSocket; dead: boolean }>();
  const server = createNetServer((client) => {
    if (down) {
      client.destroy();
      return;
    }
    const upstream = netConnect(targetPort(), "127.0.0.1");
    const pair = { client, upstream, dead: false };
    pairs.add(pair);
    const end = () => {
      pairs.delete(pair);
      if (pair.dead) return; // a dead line tells nobody
      client.destroy();
      upstream.destroy();
    };
    client.on("data", (d) => void (!pair.dead && upstream.write(d)));
    upstream.on("data", (d) => void (!pair.dead && client.write(d)));
    client.on("close", end).on("error", end);
    upstream.on("close", end).on("error", end);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  const port = (server.address() as { port: number }).port;
  return {
    url: `http://127.0.0.1:${port}`,
    cut: () => {
      down = true;
      for (const p of pairs) p.dead = true;
    },
    restore: () => {
      down = false;
      for (const p of [...pairs]) {
        if (!p.dead) continue;
        pairs.delete(p);
        p.client.destroy();
        p.upstream.destroy();
      }
    },
    close: async () => {
      for (const p of pairs) {
        p.client.destroy();
        p.upstream.destroy();
      }
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}
