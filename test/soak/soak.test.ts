/**
 * The soak, short inside `npm test` (20 s, 30 subscribers, 200 events/s, on
 * the memory bus and on Redis) and
 * long with `npm run test:soak` (RUNNEL_SOAK=1: 10 minutes, 500 subscribers,
 * 2,000 events/s). RUNNEL_SOAK_SUBSCRIBERS, _RATE and _SECONDS override the
 * size; RUNNEL_SOAK_BUS=redis runs the server on a Redis bus (a redis-server
 * the test starts). See soak-run.ts for what it does.
 */
import { describe, expect, it } from "vitest";
import { describeRedis, startRedis, type RedisProcess } from "../harness/redis.js";
import { runSoak, type SoakOptions } from "./soak-run.js";

const LONG = process.env.RUNNEL_SOAK === "1";
const ON_REDIS = process.env.RUNNEL_SOAK_BUS === "redis";

/** A whole-number override from the environment (RUNNEL_SOAK_SUBSCRIBERS, _RATE, _SECONDS). */
const fromEnv = (name: string, fallback: number): number => {
  const v = Number(process.env[`RUNNEL_SOAK_${name}`]);
  return Number.isSafeInteger(v) && v > 0 ? v : fallback;
};

const OPTIONS: Omit<SoakOptions, "log" | "bus"> = LONG
  ? {
      subscribers: fromEnv("SUBSCRIBERS", 500),
      childSubscribers: 10,
      patternSubscribers: 5,
      hostProcesses: 2,
      topics: 100,
      publishPerSecond: fromEnv("RATE", 2_000),
      durationMs: fromEnv("SECONDS", 600) * 1000,
      chaosEveryMs: 100,
      retentionSeconds: 120,
    }
  : { subscribers: 30, childSubscribers: 2, patternSubscribers: 2, hostProcesses: 1, topics: 10, publishPerSecond: 200, durationMs: 20_000, chaosEveryMs: 150, retentionSeconds: 30 };

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? 0;

/** One soak on the given bus, with every assertion. */
async function soakOn(bus: "memory" | "redis"): Promise<void> {
  const redis: RedisProcess | undefined = bus === "redis" ? await startRedis() : undefined;
  try {
    const report = await runSoak({ ...OPTIONS, ...(redis === undefined ? {} : { bus: redis.url }), log: (l) => console.log(l) });
    // Thirds of the chaos: the first is warm-up; a leak shows as the last third above the middle one.
    const third = Math.max(1, Math.floor(report.samples.length / 3));
    const middle = report.samples.slice(third, 2 * third);
    const last = report.samples.slice(-third);
    const rss = { middleMedianMb: median(middle.map((x) => x.rssMb)), lastMedianMb: median(last.map((x) => x.rssMb)), maxMb: Math.max(...report.samples.map((x) => x.rssMb)) };
    // The heap's low points (right after a collection) follow the live heap; its highs follow GC timing.
    const heapFloor = { middleMb: Math.min(...middle.map((x) => x.heapUsedMb)), lastMb: Math.min(...last.map((x) => x.heapUsedMb)) };
    const streamsMax = Math.max(...report.samples.map((x) => x.streams));
    console.log(`soak figures (${bus} bus): ${JSON.stringify({ ...report, samples: undefined, rss, heapFloor, streamsMax })}`);

    expect(report.publishFailures).toBe(0);
    expect(report.behind).toBe(0);
    expect(report.duplicates).toBe(0);
    expect(report.holes).toBe(0);
    expect(report.received).toBeGreaterThan(0);
    expect(report.restarts + report.resumes).toBeGreaterThan(0);
    // Back to baseline: nothing held, no socket left half-closed, no fd more than before the subscribers came.
    expect(report.after).toMatchObject({ streams: 0, resourcesHeld: 0, busSubscriptions: 0, closeWait: 0 });
    expect(report.after.fds).toBeLessThanOrEqual(report.baseline.fds);
    expect(report.serverExitCode).toBe(0);
    // Memory does not climb: retention was full before the chaos began, so the last third of the run sits
    // near the middle third (generous: the heap grows and shrinks with GC on a loaded machine).
    expect(rss.lastMedianMb).toBeLessThan(rss.middleMedianMb * 1.25 + 30);
    expect(heapFloor.lastMb).toBeLessThan(heapFloor.middleMb * 1.3 + 30);
  } finally {
    await redis?.stop();
  }
}

const TIMEOUT_MS = LONG ? OPTIONS.durationMs + 900_000 : 240_000;
const TITLE = `${OPTIONS.subscribers} resumable subscribers, ${OPTIONS.publishPerSecond} events/s, chaos for ${OPTIONS.durationMs / 1000} s`;

// The long soak runs on one bus (RUNNEL_SOAK_BUS=redis for Redis); the short one on both.
describe.runIf(!LONG || !ON_REDIS)("soak on the memory bus", () => {
  it(`${TITLE}: exactly once, server back to baseline`, () => soakOn("memory"), TIMEOUT_MS);
});
describeRedis.runIf(!LONG || ON_REDIS)("soak on the Redis bus", () => {
  it(`${TITLE}: exactly once, server back to baseline`, () => soakOn("redis"), TIMEOUT_MS);
});
