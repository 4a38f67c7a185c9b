/**
 * Flags and environment turned into one validated Config. Every bound the
 * server enforces is here, with its default, so README and `runnel serve
 * --help` can list them and tests can tighten them.
 */
import type { StreamLimits } from "./stream/live-stream.js";
import { parseArgs } from "node:util";
import { HARDENING_DEFAULTS, HARDENING_NUMERIC, hardeningProblem, type HardeningConfig } from "./limits/hardening-config.js";

/** Everything `runnel serve` can be told. */
export interface Config extends HardeningConfig {
  readonly host: string;
  readonly port: number;
  readonly tailDirs: readonly string[];
  /** Tail: longest line sent whole (longer ones are cut and marked); how long a partial last line waits for its newline (0: until it comes); stat poll interval behind fs.watch. */
  readonly maxLineBytes: number;
  readonly tailPartialFlushMs: number;
  readonly tailPollMs: number;
  /** "memory" or a redis:// URL. */
  readonly bus: string;
  /** Default in-band heartbeat interval, and the bounds a client's request is clamped to. */
  readonly heartbeatMs: number;
  readonly heartbeatMinMs: number;
  readonly heartbeatMaxMs: number;
  /** HTTP/2 PING keepalive: interval between pings and how long an answer may take. 0 disables. */
  readonly pingIntervalMs: number;
  readonly pingTimeoutMs: number;
  /** Per-stream queue bound. */
  readonly maxQueueEvents: number;
  readonly maxQueueBytes: number;
  /** Per-topic retention. */
  readonly retentionEvents: number;
  readonly retentionBytes: number;
  /** Most topics the memory bus keeps. */
  readonly maxTopics: number;
  /** Bytes the memory bus retains across all topics; over it the globally oldest events are trimmed. */
  readonly maxRetainedBytes: number;
  /** A write the peer has not taken within this bound ends the stream (cause dead_peer). */
  readonly writeTimeoutMs: number;
  /** How long a Closing message may take to flush before the transport is cut. */
  readonly closeFlushMs: number;
  /** Longest life of a stream; 0 is unlimited. */
  readonly maxStreamLifetimeMs: number;
  /** Shutdown grace period. */
  readonly graceMs: number;
  /** Largest request message, bytes. */
  readonly readMaxBytes: number;
  /** Longest deadline a client may ask for, ms. */
  readonly maxTimeoutMs: number;
  /** Suggested reconnect delay in Closing messages. */
  readonly retryAfterMs: number;
  readonly tlsCert: string | undefined;
  readonly tlsKey: string | undefined;
  readonly logLevel: string;
  /** Redis bus: key prefix of the shared dataset. */
  readonly redisPrefix: string;
  /** Redis bus: events older than this are trimmed from a topic (MINID); 0 disables. */
  readonly redisMaxAgeMs: number;
  /** Redis bus: approximate length of the firehose stream every node follows. */
  readonly redisFirehoseMaxlen: number;
  /** Redis bus: bound on one Redis command, ms. */
  readonly redisCommandTimeoutMs: number;
  /** Browser origins allowed to call runnel cross-origin (CORS); "*" allows any. Empty: CORS off. */
  readonly corsOrigins: readonly string[];
  /** Serve Subscribe and Tail on the lean write path (src/stream/fast-path.ts); false: connect-es's own pipeline. */
  readonly leanSubscribe: boolean;
}

/** The defaults: `npm start` runs with these. */
export const DEFAULTS: Config = {
  host: "127.0.0.1",
  port: 8080,
  tailDirs: [],
  maxLineBytes: 64 * 1024,
  tailPartialFlushMs: 1_000,
  tailPollMs: 1_000,
  bus: "memory",
  heartbeatMs: 15_000,
  heartbeatMinMs: 1_000,
  heartbeatMaxMs: 300_000,
  pingIntervalMs: 30_000,
  pingTimeoutMs: 10_000,
  maxQueueEvents: 1_000,
  maxQueueBytes: 8 * 1024 * 1024,
  retentionEvents: 10_000,
  retentionBytes: 64 * 1024 * 1024,
  maxTopics: 100_000,
  maxRetainedBytes: 1024 * 1024 * 1024,
  writeTimeoutMs: 30_000,
  closeFlushMs: 2_000,
  maxStreamLifetimeMs: 0,
  graceMs: 10_000,
  readMaxBytes: 4 * 1024 * 1024,
  maxTimeoutMs: 24 * 60 * 60 * 1000,
  retryAfterMs: 1_000,
  tlsCert: undefined,
  tlsKey: undefined,
  logLevel: "info",
  redisPrefix: "runnel:",
  redisMaxAgeMs: 0,
  redisFirehoseMaxlen: 100_000,
  redisCommandTimeoutMs: 5_000,
  corsOrigins: [],
  leanSubscribe: true,
  ...HARDENING_DEFAULTS,
};

/** A user mistake in flags: printed as one line, never with a stack. */
export class ConfigError extends Error {
  override name = "ConfigError";
}

/** Numeric flags: name on the command line, key in Config, smallest allowed value. */
const NUMERIC: ReadonlyArray<readonly [string, keyof Config, number]> = [
  ["port", "port", 0],
  ["heartbeat-ms", "heartbeatMs", 1],
  ["heartbeat-min-ms", "heartbeatMinMs", 1],
  ["heartbeat-max-ms", "heartbeatMaxMs", 1],
  ["ping-interval-ms", "pingIntervalMs", 0],
  ["ping-timeout-ms", "pingTimeoutMs", 1],
  ["max-queue-events", "maxQueueEvents", 1],
  ["max-queue-bytes", "maxQueueBytes", 1024],
  ["retention-events", "retentionEvents", 1],
  ["retention-bytes", "retentionBytes", 1024],
  ["max-topics", "maxTopics", 1],
  ["max-retained-bytes", "maxRetainedBytes", 1024],
  ["write-timeout-ms", "writeTimeoutMs", 1],
  ["close-flush-ms", "closeFlushMs", 1],
  ["max-stream-lifetime-ms", "maxStreamLifetimeMs", 0],
  ["grace-ms", "graceMs", 0],
  ["read-max-bytes", "readMaxBytes", 1024],
  ["max-timeout-ms", "maxTimeoutMs", 1],
  ["retry-after-ms", "retryAfterMs", 0],
  ["max-line-bytes", "maxLineBytes", 16],
  ["tail-partial-flush-ms", "tailPartialFlushMs", 0],
  ["tail-poll-ms", "tailPollMs", 10],
  ["redis-max-age-ms", "redisMaxAgeMs", 0],
  ["redis-firehose-maxlen", "redisFirehoseMaxlen", 1000],
  ["redis-command-timeout-ms", "redisCommandTimeoutMs", 1],
  ...HARDENING_NUMERIC,
];

/** Help text for `runnel serve`, generated from the same table the parser uses. */
export function serveHelp(): string {
  const lines = [
    "usage: runnel serve [options]",
    "",
    `  --host HOST                 address to bind (default ${DEFAULTS.host})`,
    `  --port N                    port; 0 picks a free one (default ${DEFAULTS.port})`,
    "  --tail-dir DIR              directory whose files may be tailed (repeatable)",
    `  --bus memory|redis://HOST:PORT[/DB]  event bus (default ${DEFAULTS.bus})`,
    `  --redis-prefix PREFIX       key prefix of the Redis dataset (default ${DEFAULTS.redisPrefix})`,
    "  --tls-cert FILE --tls-key FILE  serve TLS with ALPN h2 and http/1.1",
    `  --log-level LEVEL           pino level (default ${DEFAULTS.logLevel})`,
    "  --cors-origin ORIGIN        browser origin allowed to call cross-origin (repeatable; * for any)",
    "  --auth FILE                 bearer token hashes and JWT settings (README: Auth)",
    "  --insecure-public           allow a non-loopback --host without --auth",
  ];
  for (const [flag, key] of NUMERIC) {
    if (flag === "port") continue;
    lines.push(`  --${flag.padEnd(26)}default ${String(DEFAULTS[key])}`);
  }
  return lines.join("\n");
}

/** Parse `runnel serve` arguments (and RUNNEL_* environment variables) into a Config. */
export function parseServeArgs(argv: readonly string[], env: NodeJS.ProcessEnv = process.env): Config {
  const options: Record<string, { type: "string" | "boolean"; multiple?: boolean }> = {
    host: { type: "string" },
    "tail-dir": { type: "string", multiple: true },
    "cors-origin": { type: "string", multiple: true },
    bus: { type: "string" },
    "tls-cert": { type: "string" },
    "tls-key": { type: "string" },
    "log-level": { type: "string" },
    "redis-prefix": { type: "string" },
    auth: { type: "string" },
    "insecure-public": { type: "boolean" },
    help: { type: "boolean" },
  };
  for (const [flag] of NUMERIC) options[flag] = { type: "string" };
  let values: Record<string, string | boolean | (string | boolean)[] | undefined>;
  try {
    ({ values } = parseArgs({ args: [...argv], options, allowPositionals: false, strict: true }));
  } catch (e) {
    throw new ConfigError((e as Error).message);
  }
  const pick = (flag: string): string | undefined => {
    const v = values[flag];
    if (typeof v === "string") return v;
    const fromEnv = env[`RUNNEL_${flag.toUpperCase().replaceAll("-", "_")}`];
    return fromEnv === "" ? undefined : fromEnv;
  };
  const config: Record<string, unknown> = { ...DEFAULTS };
  for (const [flag, key, min] of NUMERIC) {
    const raw = pick(flag);
    if (raw === undefined) continue;
    const n = Number(raw);
    if (!/^\d+$/.test(raw.trim()) || !Number.isSafeInteger(n) || n < min) {
      throw new ConfigError(`--${flag} must be a whole number >= ${min}, got "${raw}"`);
    }
    config[key] = n;
  }
  config.host = pick("host") ?? DEFAULTS.host;
  config.bus = pick("bus") ?? DEFAULTS.bus;
  config.logLevel = pick("log-level") ?? DEFAULTS.logLevel;
  config.redisPrefix = pick("redis-prefix") ?? DEFAULTS.redisPrefix;
  config.tlsCert = pick("tls-cert");
  config.tlsKey = pick("tls-key");
  config.auth = pick("auth");
  config.insecurePublic = values["insecure-public"] === true || env.RUNNEL_INSECURE_PUBLIC === "1";
  const dirs = values["tail-dir"];
  config.tailDirs = Array.isArray(dirs) ? dirs.map(String) : (env.RUNNEL_TAIL_DIR?.split(":").filter(Boolean) ?? []);
  const origins = values["cors-origin"];
  config.corsOrigins = Array.isArray(origins) ? origins.map(String) : (env.RUNNEL_CORS_ORIGIN?.split(",").map((o) => o.trim()).filter(Boolean) ?? []);
  return validate(config as unknown as Config);
}

/** Check relations between settings; returns the config unchanged when valid. */
export function validate(config: Config): Config {
  if (config.port > 65535) throw new ConfigError(`--port must be at most 65535, got ${config.port}`);
  if (config.heartbeatMinMs > config.heartbeatMaxMs) {
    throw new ConfigError(`--heartbeat-min-ms (${config.heartbeatMinMs}) is above --heartbeat-max-ms (${config.heartbeatMaxMs})`);
  }
  if (config.bus !== "memory" && !/^rediss?:\/\//.test(config.bus)) {
    throw new ConfigError(`--bus must be "memory" or a redis:// URL, got "${config.bus}"`);
  }
  if ((config.tlsCert === undefined) !== (config.tlsKey === undefined)) {
    throw new ConfigError("--tls-cert and --tls-key go together");
  }
  for (const origin of config.corsOrigins) {
    if (origin !== "*" && !/^https?:\/\/[^/\s]+\/?$/.test(origin)) {
      throw new ConfigError(`--cors-origin must be * or an origin such as https://app.example.com, got "${origin}"`);
    }
  }
  const hardening = hardeningProblem(config);
  if (hardening !== undefined) throw new ConfigError(hardening);
  return config;
}

/** Clamp a client's requested heartbeat interval (0 = default) to the server's bounds. */
export function clampHeartbeat(config: Config, requestedMs: number): number {
  const wanted = requestedMs === 0 ? config.heartbeatMs : requestedMs;
  return Math.min(config.heartbeatMaxMs, Math.max(config.heartbeatMinMs, wanted));
}

/** The per-stream bounds every streaming service gives the stream core (queue, lifetime, Closing flush, retry hint). */
export function streamLimitsOf(config: Config): StreamLimits {
  return {
    queue: { maxItems: config.maxQueueEvents, maxBytes: config.maxQueueBytes },
    lifetimeMs: config.maxStreamLifetimeMs,
    closeFlushMs: config.closeFlushMs,
    retryAfterMs: config.retryAfterMs,
  };
}
