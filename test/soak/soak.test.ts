/**
 * The soak, short inside `npm test` (about 20 s, 30 subscribers, 200
 * events/s) and long with `npm run test:soak` (RUNNEL_SOAK=1: 10 minutes,
 * 500 subscribers, 2,000 events/s; RUNNEL_SOAK_SUBSCRIBERS, RUNNEL_SOAK_RATE
 * and RUNNEL_SOAK_SECONDS override). See soak-run.ts for what it does.
 */
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { heldResources } from "../../src/stream/scope.js";
import { closeWaitCount, openFdCount } from "../harness/procfs.js";
import { startServer, waitFor } from "../harness/server.js";
import { runSoak, type SoakOptions } from "./soak-run.js";

const LONG = process.env.RUNNEL_SOAK === "1";
const cliPath = fileURLToPath(new URL("../../dist/src/cli.js", import.meta.url));

/** A whole-number override from the environment (RUNNEL_SOAK_SUBSCRIBERS, _RATE, _SECONDS). */
const fromEnv = (name: string, fallback: number): number => {
  const v = Number(process.env[`RUNNEL_SOAK_${name}`]);
  return Number.isSafeInteger(v) && v > 0 ? v : fallback;
};

const OPTIONS: Omit<SoakOptions, "cliPath" | "log"> = LONG
  ? {
      subscribers: fromEnv("SUBSCRIBERS", 500),
      childSubscribers: 10,
      patternSubscribers: 5,
      topics: 100,
      publishPerSecond: fromEnv("RATE", 2_000),
      durationMs: fromEnv("SECONDS", 600) * 1000,
      chaosEveryMs: 100,
    }
  : { subscribers: 30, childSubscribers: 2, patternSubscribers: 2, topics: 10, publishPerSecond: 200, durationMs: 20_000, chaosEveryMs: 150 };

describe("soak", () => {
  it(
    `${OPTIONS.subscribers} resumable subscribers, ${OPTIONS.publishPerSecond} events/s, chaos for ${OPTIONS.durationMs / 1000} s: exactly once, back to baseline`,
    async () => {
      const server = await startServer({
        // Silent peers must be found fast: keepalive and write-stall bounds are short.
        // (Clients share this process's event loop: on a loaded machine a 1 s PING answer is not guaranteed.)
        pingIntervalMs: 1_000,
        pingTimeoutMs: 3_000,
        writeTimeoutMs: 3_000,
        heartbeatMinMs: 500,
        // About two minutes of history per topic: memory plateaus (so a climbing RSS means a leak), and a
        // subscriber kept down longer than that resumes with an honest Gap.
        retentionEvents: Math.max(1_000, Math.ceil((OPTIONS.publishPerSecond / OPTIONS.topics) * 120)),
      });
      const fdsBefore = openFdCount();
      const report = await runSoak(server, { ...OPTIONS, cliPath, log: (l) => console.log(l) });
      await waitFor(() => server.ledger.size === 0, 30_000, "ledger empty");
      await waitFor(() => closeWaitCount(server.port) === 0, 30_000, "no CLOSE_WAIT");
      // Client-side HTTP/2 sessions of the soak's own subscribers idle out after 500 ms.
      await waitFor(() => openFdCount() <= fdsBefore + 5, 30_000, `fds back to baseline (${fdsBefore}, now ${openFdCount()})`);
      const third = Math.max(1, Math.floor(report.rssMb.length / 3));
      const early = report.rssMb.slice(third, 2 * third);
      const late = report.rssMb.slice(-third);
      const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? 0;
      const figures = {
        ...report,
        rssMb: undefined,
        rssMedianMiddleThirdMb: median(early),
        rssMedianLastThirdMb: median(late),
        fdsBefore,
        fdsAfter: openFdCount(),
        closeWait: closeWaitCount(server.port),
        liveStreams: server.ledger.size,
        endCauses: Object.fromEntries([...server.ledger.endedTotals()].map(([, cause, n]) => [cause, n])),
      };
      console.log(`soak figures: ${JSON.stringify(figures)}`);
      expect(report.publishFailures).toBe(0);
      expect(report.duplicates).toBe(0);
      expect(report.holes).toBe(0);
      expect(report.received).toBeGreaterThan(0);
      expect(report.restarts).toBeGreaterThan(0);
      expect([...heldResources()]).toEqual([]);
      expect(server.bus.stats().subscriptionsActive).toBe(0);
      // RSS does not climb: the last third of the run is not far above the middle third (generous: a loaded machine).
      expect(median(late)).toBeLessThan(median(early) * 1.5 + 50);
      await server.shutdown(2_000);
    },
    LONG ? OPTIONS.durationMs + 600_000 : 180_000,
  );
});
