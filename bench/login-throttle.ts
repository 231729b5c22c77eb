/**
 * Sign-in guessing, measured: a script posts wrong passwords for one account as fast as
 * the console answers, through the real sign-in path (next-auth's credentials callback
 * in a console serving pages, PostgreSQL, scrypt), and counts per minute
 *
 *   answers      — HTTP answers the script got,
 *   checked      — passwords the console actually verified (the audit log's denied
 *                  attempts with checked ≠ false).
 *
 * "without throttling" clears the counters after every attempt (every guess is checked,
 * as before throttling existed); "with throttling" leaves them. Then the right password
 * is tried while locked, and after an admin's unlock.
 *
 * First, the time a wrong password takes for a known and for an unknown email (the
 * unknown one verifies against a dummy hash of the same cost), as medians.
 *
 * Needs `npm run build:ui` and the test PostgreSQL (scripts/start-test-postgres.sh).
 * Usage: node --import tsx bench/login-throttle.ts [--seconds N]   (default 60 per phase)
 */
import { parseArgs } from "node:util";
import { authenticatePassword } from "../server/auth/login.ts";
import { hashPassword } from "../server/auth/password.ts";
import { createUser, startTestConsole } from "../test/helpers/console.ts";
import { signInOverHttp } from "../test/helpers/sign-in-http.ts";

const { values } = parseArgs({ options: { seconds: { type: "string", default: "60" } } });
const seconds = Number(values.seconds);

const c = await startTestConsole("bench_login", { ui: true });
try {
  const prisma = c.services.prisma;
  const user = await createUser(c, "operator");
  // Known and unknown emails, alternating, with the console's own hash cost.
  await prisma.user.create({ data: { email: "timed@bench.local", passwordHash: await hashPassword("a password that is not guessed") } });
  const times = { known: [] as number[], unknown: [] as number[] };
  for (let i = 0; i < 15; i++) {
    for (const [kind, email] of [
      ["known", "timed@bench.local"],
      ["unknown", `nobody-${i}@bench.local`],
    ] as const) {
      const t = process.hrtime.bigint();
      await authenticatePassword(prisma, email, `wrong-${i}`);
      times[kind].push(Number(process.hrtime.bigint() - t) / 1e6);
    }
  }
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!.toFixed(0);
  console.log(`wrong password, median of 15: known email ${median(times.known)} ms, unknown email ${median(times.unknown)} ms`);
  const checkedSince = async (since: Date) => {
    const rows = await prisma.auditLog.findMany({ where: { action: "auth.login", outcome: "denied", at: { gte: since } }, select: { details: true } });
    return rows.filter((r) => (r.details as { checked?: boolean }).checked !== false).length;
  };
  const phase = async (name: string, clear: boolean) => {
    const since = new Date();
    const end = Date.now() + seconds * 1000;
    let answers = 0;
    let last = "";
    while (Date.now() < end) {
      const r = await signInOverHttp(c.url, { email: user.email, password: `guess-${answers}` });
      answers++;
      last = r.error ?? "";
      if (clear) await prisma.loginThrottle.deleteMany({});
    }
    const checked = await checkedSince(since);
    const perMin = (n: number) => ((n * 60) / seconds).toFixed(1);
    console.log(
      `${name}: ${answers} answers, ${checked} passwords checked in ${seconds} s → ${perMin(answers)} answers/min, ${perMin(checked)} checked/min; last answer: ${last}`,
    );
  };
  await phase("without throttling", true);
  await prisma.auditLog.deleteMany({ where: { action: "auth.login" } });
  await phase("with throttling   ", false);
  await phase("with throttling, next minute", false);
  const locked = await signInOverHttp(c.url, { email: user.email, password: user.password });
  console.log(`right password while locked: ${locked.ok ? "ACCEPTED" : `refused: ${locked.error}`}`);
  await prisma.loginThrottle.deleteMany({ where: { key: `account:${user.email}` } });
  const unlocked = await signInOverHttp(c.url, { email: user.email, password: user.password });
  console.log(`right password after unlock: ${unlocked.ok ? "accepted" : `REFUSED: ${unlocked.error}`}`);
} finally {
  await c.stop();
}
