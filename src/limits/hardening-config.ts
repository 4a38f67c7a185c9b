/**
 * The settings of auth, limits and HTTP defences, kept apart from the core
 * flags so they read as one block. `Config` extends this; the flag parser
 * takes the numeric ones from `HARDENING_NUMERIC`.
 */
import { MAX_TOPIC_DEPTH, MAX_TOPIC_LENGTH } from "../bus/topic.js";

/** Auth, limits and HTTP defences. */
export interface HardeningConfig {
  /** `--auth FILE`: bearer token hashes and JWT settings; undefined = auth off. */
  readonly auth: string | undefined;
  /** Allow binding a non-loopback address without `--auth`. */
  readonly insecurePublic: boolean;
  /** Live streams on this node, all callers together. */
  readonly maxStreams: number;
  /** Live streams from one remote address. */
  readonly maxStreamsPerPeer: number;
  /** Live streams of one token or JWT subject (auth on only). */
  readonly maxStreamsPerToken: number;
  /** Live pattern subscriptions (`*` or `>`) on this node. */
  readonly maxPatternSubscriptions: number;
  /** Publishes per second per token or JWT subject (token bucket); 0 = unlimited. */
  readonly publishRate: number;
  /** Bucket size of the publish rate; 0 = same as the rate. */
  readonly publishBurst: number;
  /** Largest event payload, bytes. */
  readonly maxEventBytes: number;
  /** Most events in one PublishBatch. */
  readonly maxBatchEvents: number;
  /** Most headers on one event, and their total size in bytes (names + values). */
  readonly maxEventHeaders: number;
  readonly maxEventHeaderBytes: number;
  /** Longest topic or pattern, characters (at most 256), and most tokens (at most 16). */
  readonly maxTopicLength: number;
  readonly maxTopicDepth: number;
  /** Concurrent Tail streams of one file (the tail line bound is `--max-line-bytes`, with the Tail flags). */
  readonly maxTailsPerFile: number;
  /** HTTP/1.1: time for a request's headers to arrive. */
  readonly headersTimeoutMs: number;
  /** Time for a whole request (headers and body) to arrive; streams are not cut by it once their request is in. */
  readonly requestTimeoutMs: number;
  /** HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS per session. */
  readonly h2MaxConcurrentStreams: number;
  /** Largest HTTP request header block, bytes (HTTP/1.1 and HTTP/2). */
  readonly maxHttpHeaderBytes: number;
}

/** Defaults: generous for one busy node, tight enough that no single caller takes it down. */
export const HARDENING_DEFAULTS: HardeningConfig = {
  auth: undefined,
  insecurePublic: false,
  maxStreams: 100_000,
  maxStreamsPerPeer: 2_000,
  maxStreamsPerToken: 2_000,
  maxPatternSubscriptions: 10_000,
  publishRate: 0,
  publishBurst: 0,
  maxEventBytes: 1024 * 1024,
  maxBatchEvents: 1_000,
  maxEventHeaders: 64,
  maxEventHeaderBytes: 16 * 1024,
  maxTopicLength: MAX_TOPIC_LENGTH,
  maxTopicDepth: MAX_TOPIC_DEPTH,
  maxTailsPerFile: 100,
  headersTimeoutMs: 10_000,
  requestTimeoutMs: 30_000,
  h2MaxConcurrentStreams: 1_000,
  maxHttpHeaderBytes: 16 * 1024,
};

/** Numeric flags of this block: flag, Config key, smallest value. */
export const HARDENING_NUMERIC: ReadonlyArray<readonly [string, keyof HardeningConfig, number]> = [
  ["max-streams", "maxStreams", 1],
  ["max-streams-per-peer", "maxStreamsPerPeer", 1],
  ["max-streams-per-token", "maxStreamsPerToken", 1],
  ["max-pattern-subscriptions", "maxPatternSubscriptions", 0],
  ["publish-rate", "publishRate", 0],
  ["publish-burst", "publishBurst", 0],
  ["max-event-bytes", "maxEventBytes", 1],
  ["max-batch-events", "maxBatchEvents", 1],
  ["max-event-headers", "maxEventHeaders", 0],
  ["max-event-header-bytes", "maxEventHeaderBytes", 0],
  ["max-topic-length", "maxTopicLength", 1],
  ["max-topic-depth", "maxTopicDepth", 1],
  ["max-tails-per-file", "maxTailsPerFile", 1],
  ["headers-timeout-ms", "headersTimeoutMs", 100],
  ["request-timeout-ms", "requestTimeoutMs", 100],
  ["h2-max-concurrent-streams", "h2MaxConcurrentStreams", 1],
  ["max-http-header-bytes", "maxHttpHeaderBytes", 1024],
];

/** Relations between these settings; returns a problem or undefined. */
export function hardeningProblem(c: HardeningConfig & { readonly host: string }): string | undefined {
  if (c.maxTopicLength > MAX_TOPIC_LENGTH) return `--max-topic-length is at most ${MAX_TOPIC_LENGTH}`;
  if (c.maxTopicDepth > MAX_TOPIC_DEPTH) return `--max-topic-depth is at most ${MAX_TOPIC_DEPTH}`;
  if (c.headersTimeoutMs > c.requestTimeoutMs) return `--headers-timeout-ms (${c.headersTimeoutMs}) is above --request-timeout-ms (${c.requestTimeoutMs})`;
  if (c.auth === undefined && !c.insecurePublic && !isLoopback(c.host)) {
    return `--host ${c.host} would let anyone on the network in without auth: give --auth FILE, or --insecure-public to do it anyway`;
  }
  return undefined;
}

/** Whether a bind address only accepts local connections. */
export function isLoopback(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, "").toLowerCase();
  return h === "localhost" || h === "::1" || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(h) || /^::ffff:127\./.test(h);
}
