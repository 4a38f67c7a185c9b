/**
 * The Redis Streams bus: several runnel nodes share topics, history and
 * cursors through one Redis. Publish runs one Lua script (seq, firehose
 * position and stream id assigned atomically in Redis); each node follows the
 * firehose with a single blocking reader and fans events out in memory through
 * the same pattern index as the memory bus; replays read the per-topic
 * streams. A node holds two Redis connections, whatever its subscribers.
 */
import { randomBytes } from "node:crypto";
import type { Logger } from "pino";
import { type Bus, BusError, type BusStats, type DeliverySink, type PublishInput, type StartPosition, type StoredEvent, type SubscribeSpec } from "./bus.js";
import { PatternIndex } from "./pattern-index.js";
import { RedisConnections, type ConnectionStats } from "./redis-connections.js";
import { decodeRedisCursor, encodeRedisCursor } from "./redis-cursor.js";
import { headersText, storedEvent, type RedisEntry } from "./redis-entries.js";
import { RedisHistory } from "./redis-history.js";
import { idOf, ZERO_ID } from "./redis-ids.js";
import { FirehoseReader } from "./redis-reader.js";
import { redisKeys, withScripts } from "./redis-scripts.js";
import { RedisSubscription, type RedisStart, type RedisSubscriptionHost } from "./redis-subscription.js";
import { isPattern, patternProblem, topicProblem } from "./topic.js";

/** Settings of a Redis bus. */
export interface RedisBusOptions {
  /** redis://HOST:PORT[/DB] */
  readonly url: string;
  readonly log: Logger;
  /** Key prefix of the dataset (default "runnel:"); nodes sharing topics use the same. */
  readonly prefix?: string;
  /** Events kept per topic (XADD MAXLEN, exact); 0 keeps all (use with maxAgeMs). Default 10,000. */
  readonly maxlen?: number;
  /** Events older than this are trimmed from a topic when it is published to (XTRIM MINID); 0 disables. */
  readonly maxAgeMs?: number;
  /** Approximate length of the firehose every node follows (MAXLEN ~). Default 100,000. */
  readonly firehoseMaxlen?: number;
  /** Bound on one Redis command (publish, replay read), ms. Default 5,000. */
  readonly commandTimeoutMs?: number;
}

/** Redis-specific figures for metrics. */
export interface RedisBusHealth extends ConnectionStats {
  /** From an event's append to its dispatch by this node's reader, for the last event read, ms. */
  readonly readerLagMs: number;
}

/** A Bus backed by Redis Streams. */
export interface RedisBus extends Bus {
  /** Resolves once the node has reached Redis (or at once if it already has). */
  ready(): Promise<void>;
  health(): RedisBusHealth;
}

/** Creates a Redis bus and starts connecting; the reader loop starts at once. */
export function createRedisBus(options: RedisBusOptions): RedisBus {
  const keys = redisKeys(options.prefix ?? "runnel:");
  const maxlen = options.maxlen ?? 10_000;
  const maxAgeMs = options.maxAgeMs ?? 0;
  const firehoseMaxlen = options.firehoseMaxlen ?? 100_000;
  const log = options.log;
  const connections = new RedisConnections(options.url, log, options.commandTimeoutMs ?? 5_000);
  const command = withScripts(connections.command);
  const history = new RedisHistory(command, keys, maxlen);
  const index = new PatternIndex<RedisSubscription>();
  const subscriptions = new Set<RedisSubscription>();
  const matched: RedisSubscription[] = [];
  let closed = false;

  const reader = new FirehoseReader(withScripts(connections.reader), keys, {
    dispatch(entry: RedisEntry) {
      matched.length = 0;
      index.collect(entry.event.topic, matched);
      for (const sub of matched) sub.offer(entry);
      matched.length = 0;
    },
    resync(reason) {
      for (const sub of [...subscriptions]) sub.resync(reason);
    },
  }, log);
  reader.start();

  const host: RedisSubscriptionHost = {
    history,
    log,
    detach(sub) {
      subscriptions.delete(sub);
      index.remove(sub.pattern, sub);
    },
    sinkFailed(error) {
      log.warn({ err: error }, "redis bus: a subscriber's sink threw; its subscription was closed");
    },
  };

  /** Publish events in order with one script (one round trip; nothing else runs between them in Redis). */
  async function publishBatch(events: readonly PublishInput[]): Promise<StoredEvent[]> {
    if (closed) throw new BusError("unavailable", "bus is closed");
    for (const e of events) {
      const problem = topicProblem(e.topic);
      if (problem !== undefined) throw new BusError("invalid", problem);
    }
    if (command.status !== "ready") throw new BusError("unavailable", `redis is unreachable (connection ${command.status})`);
    const keyList: string[] = [keys.epoch, keys.seqs, keys.count, keys.firehose, keys.trimmed];
    const args: Array<string | number | Buffer> = [randomBytes(6).toString("hex"), maxlen, maxAgeMs, firehoseMaxlen];
    for (const e of events) {
      keyList.push(keys.topic(e.topic));
      args.push(e.topic, Buffer.from(e.data.buffer, e.data.byteOffset, e.data.byteLength), headersText(e.headers));
    }
    let reply: Array<string | number>;
    try {
      reply = await command.runnelPublish(keyList.length, ...keyList, ...args);
    } catch (error) {
      throw new BusError("unavailable", `redis publish failed: ${(error as Error).message}`);
    }
    const epoch = String(reply[0]);
    return events.map((e, i) => storedEvent(epoch, idOf(String(reply[1 + 2 * i])), e.topic, Number(reply[2 + 2 * i]), e.data, { ...e.headers }));
  }

  function headCursor(): string {
    return encodeRedisCursor(reader.epoch, reader.position, 0, "");
  }

  /** Where a subscription starts, and the cursor that says so. Throws BusError("invalid"). */
  function planStart(pattern: string, start: StartPosition): { plan: RedisStart; cursor: string } {
    const epoch = reader.epoch;
    switch (start.kind) {
      case "live":
        return { plan: { position: reader.position, live: true, checkTrimmed: false }, cursor: headCursor() };
      case "earliest":
        return { plan: { position: ZERO_ID, live: false, checkTrimmed: false }, cursor: encodeRedisCursor(epoch, ZERO_ID, 0, "") };
      case "last": {
        if (!Number.isSafeInteger(start.count) || start.count < 0) {
          throw new BusError("invalid", `last must be a whole number of events >= 0, got ${start.count}`);
        }
        if (start.count === 0) return planStart(pattern, { kind: "live" });
        // The exact start is known only after reading Redis; the earliest cursor never resumes later than it.
        return { plan: { position: ZERO_ID, live: false, last: start.count, checkTrimmed: false }, cursor: encodeRedisCursor(epoch, ZERO_ID, 0, "") };
      }
      case "fromSeq": {
        if (isPattern(pattern)) throw new BusError("invalid", `from_seq needs an exact topic, not a pattern like "${pattern}"`);
        if (start.seq < 1n) throw new BusError("invalid", "from_seq must be 1 or more (seqs count from 1)");
        const from = start.seq > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : Number(start.seq);
        const plan: RedisStart = { position: ZERO_ID, live: false, floor: { topic: pattern, seq: from }, checkTrimmed: false };
        const cursor = from <= 1 ? encodeRedisCursor(epoch, ZERO_ID, 0, "") : encodeRedisCursor(epoch, ZERO_ID, from - 1, pattern);
        return { plan, cursor };
      }
      case "afterCursor": {
        const parts = decodeRedisCursor(start.cursor);
        if (typeof parts === "string") throw new BusError("invalid", parts);
        const floor = parts.topic === "" ? undefined : { topic: parts.topic, seq: parts.seq + 1 };
        const plan: RedisStart = {
          position: parts.id,
          live: false,
          ...(floor !== undefined ? { floor } : {}),
          cursorEpoch: parts.epoch,
          checkTrimmed: true,
        };
        return { plan, cursor: start.cursor };
      }
    }
  }

  return {
    async publish(topic, data, headers): Promise<StoredEvent> {
      return (await publishBatch([{ topic, data, headers }]))[0]!;
    },

    publishBatch,

    subscribe(spec: SubscribeSpec, sink: DeliverySink) {
      if (closed) throw new BusError("unavailable", "bus is closed");
      const problem = patternProblem(spec.pattern);
      if (problem !== undefined) throw new BusError("invalid", problem);
      const { plan, cursor } = planStart(spec.pattern, spec.start);
      const sub = new RedisSubscription(spec.pattern, sink, host, cursor, plan);
      subscriptions.add(sub);
      index.add(spec.pattern, sub);
      sub.start();
      return sub;
    },

    headCursor,

    stats(): BusStats {
      return { subscriptionsActive: subscriptions.size, topics: 0, retainedEvents: 0, retainedBytes: 0 };
    },

    ready() {
      return reader.ready;
    },

    health() {
      return { ...connections.stats(), readerLagMs: reader.lagMs };
    },

    async close() {
      if (closed) return;
      closed = true;
      for (const sub of [...subscriptions]) sub.close();
      reader.stop();
      await connections.close();
    },
  };
}
