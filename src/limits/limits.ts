/**
 * Every limit a request can hit, checked in one place and counted in
 * `runnel_limit_hits_total{limit}`. Stream counts come from the ledger (each
 * stream is tallied under its peer address, its principal, "pattern" and
 * "tail:PATH" keys), so a stream stops counting the moment it is released.
 * Past a limit: ResourceExhausted with a message naming the limit.
 */
import { Code, ConnectError, type HandlerContext } from "@connectrpc/connect";
import { Counter, type Registry } from "prom-client";
import { isPattern } from "../bus/topic.js";
import type { Ledger } from "../stream/ledger.js";
import { transportKey } from "../stream/transport.js";
import type { Principal } from "../auth/rights.js";
import type { HardeningConfig } from "./hardening-config.js";
import { TokenBuckets } from "./token-bucket.js";

/** Names of the limits, as the metric labels them. */
export const LIMIT_NAMES = [
  "streams_total",
  "streams_per_peer",
  "streams_per_token",
  "pattern_subscriptions",
  "publish_rate",
  "batch_events",
  "event_bytes",
  "event_headers",
  "event_header_bytes",
  "topic_length",
  "topic_depth",
  "tails_per_file",
  "tail_line_bytes",
] as const;
export type LimitName = (typeof LIMIT_NAMES)[number];

/** The limits of one server. */
export class Limits {
  private readonly publishBuckets: TokenBuckets;
  private readonly hits: Counter<"limit">;

  constructor(
    private readonly config: HardeningConfig,
    private readonly ledger: Ledger,
    registry: Registry,
  ) {
    this.publishBuckets = new TokenBuckets(config.publishRate, config.publishBurst || config.publishRate);
    this.hits = new Counter({ name: "runnel_limit_hits_total", help: "Requests refused by a limit, by limit", labelNames: ["limit"], registers: [registry] });
    for (const name of LIMIT_NAMES) this.hits.inc({ limit: name }, 0);
  }

  /** Count a hit and build the error (for limits enforced elsewhere, e.g. the tail line length). */
  hit(limit: LimitName, message: string): ConnectError {
    this.noteHit(limit);
    return new ConnectError(message, Code.ResourceExhausted);
  }

  /** Count a hit that is handled without an error (a tail line cut at --max-line-bytes). */
  noteHit(limit: LimitName): void {
    this.hits.inc({ limit });
  }

  /**
   * The ledger keys a new stream is counted under. Pass them as the stream's
   * `tally` setting, then call `admitStream` with them from the stream's setup.
   */
  streamTally(ctx: HandlerContext, principal: Principal, what: { pattern?: string; tailPath?: string }): string[] {
    const keys = [`peer:${peerAddress(ctx)}`, `principal:${principal.name}`];
    if (what.pattern !== undefined && isPattern(what.pattern)) keys.push("pattern");
    if (what.tailPath !== undefined) keys.push(`tail:${what.tailPath}`);
    return keys;
  }

  /** Throw ResourceExhausted when a stream just added to the ledger under `tally` takes any count over its limit. */
  admitStream(tally: readonly string[]): void {
    const c = this.config;
    if (this.ledger.size > c.maxStreams) throw this.hit("streams_total", `the server has ${c.maxStreams} live streams, its limit`);
    for (const key of tally) {
      const n = this.ledger.tallyOf(key);
      if (key.startsWith("peer:") && n > c.maxStreamsPerPeer) {
        throw this.hit("streams_per_peer", `${key.slice(5)} has ${c.maxStreamsPerPeer} live streams, the limit per address`);
      }
      if (key.startsWith("principal:") && key !== "principal:anonymous" && n > c.maxStreamsPerToken) {
        throw this.hit("streams_per_token", `${key.slice(10)} has ${c.maxStreamsPerToken} live streams, the limit per token`);
      }
      if (key === "pattern" && n > c.maxPatternSubscriptions) {
        throw this.hit("pattern_subscriptions", `the server has ${c.maxPatternSubscriptions} live pattern subscriptions, its limit`);
      }
      if (key.startsWith("tail:") && n > c.maxTailsPerFile) {
        throw this.hit("tails_per_file", `"${key.slice(5)}" is tailed by ${c.maxTailsPerFile} streams, the limit per file`);
      }
    }
  }

  /** Topic or pattern length and depth (`what` names it in the message). */
  checkTopic(topic: string, what: "topic" | "pattern" = "topic"): void {
    const c = this.config;
    if (topic.length > c.maxTopicLength) throw this.hit("topic_length", `${what} is longer than ${c.maxTopicLength} characters`);
    let depth = 1;
    for (let i = 0; i < topic.length; i++) if (topic.charCodeAt(i) === 46) depth++;
    if (depth > c.maxTopicDepth) throw this.hit("topic_depth", `${what} has more than ${c.maxTopicDepth} tokens`);
  }

  /**
   * The publish rate (per token; per remote address when auth is off). It
   * counts events, not calls: a publish of `events` events takes that many
   * tokens, all or none.
   */
  admitPublish(ctx: HandlerContext, principal: Principal, events = 1): void {
    const c = this.config;
    const who = principal.name === "anonymous" ? peerAddress(ctx) : principal.name;
    if (!this.publishBuckets.take(who, events)) {
      const burst = c.publishBurst || c.publishRate;
      const batch = events === 1 ? "" : events > burst ? ` (a batch of ${events} events is more than its burst of ${burst}: split it)` : ` (a batch of ${events} events needs as many tokens)`;
      throw this.hit("publish_rate", `${who} is over its publish rate of ${c.publishRate}/s${batch}; slow down`);
    }
  }

  /** The number of events in one PublishBatch (an empty batch is the service's InvalidArgument). */
  checkBatch(events: number): void {
    const c = this.config;
    if (events > c.maxBatchEvents) throw this.hit("batch_events", `the batch has ${events} events (at most ${c.maxBatchEvents})`);
  }

  /** Everything one event is bounded by: topic, payload and headers. */
  checkEvent(topic: string, data: Uint8Array, headers: Record<string, string>): void {
    const c = this.config;
    this.checkTopic(topic);
    if (data.byteLength > c.maxEventBytes) throw this.hit("event_bytes", `event data is ${data.byteLength} bytes (at most ${c.maxEventBytes})`);
    const keys = Object.keys(headers);
    if (keys.length > c.maxEventHeaders) throw this.hit("event_headers", `too many headers: ${keys.length} (at most ${c.maxEventHeaders})`);
    let bytes = 0;
    for (const k of keys) bytes += k.length + headers[k]!.length;
    if (bytes > c.maxEventHeaderBytes) throw this.hit("event_header_bytes", `headers take ${bytes} bytes (at most ${c.maxEventHeaderBytes})`);
  }
}

/** The remote address (no port) of a request, or "unknown". */
export function peerAddress(ctx: HandlerContext): string {
  const peer = ctx.values.get(transportKey)?.peer ?? "unknown";
  const colon = peer.lastIndexOf(":");
  return colon > 0 ? peer.slice(0, colon) : peer;
}
