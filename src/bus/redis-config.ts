/**
 * Server wiring of the Redis bus: builds it from the Config when `--bus` is a
 * redis:// URL, and waits (bounded) for it to reach Redis before the server
 * listens, so the first requests do not all meet Unavailable.
 */
import type { Logger } from "pino";
import type { Bus } from "./bus.js";
import { ConfigError, type Config } from "../config.js";
import { createRedisBus, type RedisBus } from "./redis-bus.js";
import { redisOptionsOf } from "./redis-connections.js";

/** How long `listen()` waits for Redis before serving anyway (publishes then fail with Unavailable until it comes). */
export const READY_WAIT_MS = 5_000;

/** The Redis bus `config.bus` asks for, or undefined for the memory bus. */
export function busFromConfig(config: Config, log: Logger): RedisBus | undefined {
  if (!/^rediss?:\/\//.test(config.bus)) return undefined;
  try {
    redisOptionsOf(config.bus);
  } catch (e) {
    throw new ConfigError((e as Error).message);
  }
  return createRedisBus({
    url: config.bus,
    log: log.child({ bus: "redis" }),
    prefix: config.redisPrefix,
    maxlen: config.retentionEvents,
    maxAgeMs: config.redisMaxAgeMs,
    firehoseMaxlen: config.redisFirehoseMaxlen,
    commandTimeoutMs: config.redisCommandTimeoutMs,
  });
}

/** True for a bus with Redis's extras (readiness and health). */
export function isRedisBus(bus: Bus): bus is RedisBus {
  return "health" in bus && "ready" in bus;
}

/** Waits up to READY_WAIT_MS for a Redis bus to reach Redis; other buses are ready at once. */
export async function untilBusReady(bus: Bus, log: Logger): Promise<void> {
  if (!isRedisBus(bus)) return;
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(true), READY_WAIT_MS)));
  const late = await Promise.race([bus.ready().then(() => false), timedOut]);
  clearTimeout(timer);
  if (late) log.warn({ waitedMs: READY_WAIT_MS }, "redis is not reachable yet; serving anyway (publishes fail with Unavailable until it is)");
}
