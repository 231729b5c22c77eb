/** Docker's STATUS column ("Up 5 minutes", "Exited (0) 2 hours ago"), shared by both doors. */

const NEVER = "0001-01-01T00:00:00Z";

/** Docker's units.HumanDuration. */
export function humanDuration(ms: number): string {
  const s = Math.round(ms / 1000);
  if (s < 1) return "Less than a second";
  if (s === 1) return "1 second";
  if (s < 60) return `${s} seconds`;
  const m = Math.round(s / 60);
  if (m === 1) return "About a minute";
  if (m < 60) return `${m} minutes`;
  const h = Math.round(s / 3600);
  if (h === 1) return "About an hour";
  if (h < 48) return `${h} hours`;
  if (h < 24 * 7 * 2) return `${Math.round(h / 24)} days`;
  if (h < 24 * 30 * 2) return `${Math.round(h / 24 / 7)} weeks`;
  if (h < 24 * 365 * 2) return `${Math.round(h / 24 / 30)} months`;
  return `${Math.round(h / 24 / 365)} years`;
}

export interface StatusFacts {
  state: string;
  exitCode: number;
  startedAt: string;
  finishedAt: string;
  /** The health check's status, when the container has one. */
  health?: string;
}

/** The STATUS text of a container at time `now` (unix ms). */
export function containerStatusText(c: StatusFacts, now: number): string {
  const since = (iso: string) => (iso === NEVER ? 0 : now - Date.parse(iso));
  switch (c.state) {
    case "running":
      // Docker: "Up 5 seconds (healthy)", "(unhealthy)", and "(health: starting)".
      if (c.health) return `Up ${humanDuration(since(c.startedAt))} (${c.health === "starting" ? "health: starting" : c.health})`;
      return `Up ${humanDuration(since(c.startedAt))}`;
    case "paused":
      return `Up ${humanDuration(since(c.startedAt))} (Paused)`;
    case "restarting":
      return `Restarting (${c.exitCode}) ${humanDuration(since(c.finishedAt))} ago`;
    case "exited":
      return `Exited (${c.exitCode}) ${humanDuration(since(c.finishedAt))} ago`;
    case "removing":
      return "Removal In Progress";
    case "dead":
      return "Dead";
    default:
      return "Created";
  }
}
