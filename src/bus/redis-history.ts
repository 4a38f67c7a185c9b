/**
 * Reads of retained history for replays, on the node's command connection:
 * the dataset snapshot (epoch, firehose head), the topics a pattern covers,
 * batches of each topic's stream after a position, and the newest events for
 * `last N`. Every read is bounded (COUNT), so a replay never pulls a whole
 * history into memory at once.
 */
import { entryOf, type RawEntry, type RedisEntry } from "./redis-entries.js";
import { compareIds, idOf, type StreamId } from "./redis-ids.js";
import type { RedisKeys, ScriptedRedis } from "./redis-scripts.js";
import { isPattern, matches } from "./topic.js";

/** What a replay round starts from. */
export interface Snapshot {
  /** Epoch of the dataset; undefined when nothing was ever published into it. */
  readonly epoch: string | undefined;
  /** Id of the newest event ever appended (the firehose's last id). */
  readonly head: StreamId;
}

/** Entries read per round across all topics (split between them, with a floor per topic). */
const ROUND_ENTRIES = 4_096;

/** Per-topic batch size for a round over `topics` topics. */
export function batchSize(topics: number): number {
  return Math.max(16, Math.min(512, Math.floor(ROUND_ENTRIES / Math.max(1, topics))));
}

/** History queries against one dataset. */
export class RedisHistory {
  constructor(
    private readonly redis: ScriptedRedis,
    private readonly keys: RedisKeys,
    /** Most events one topic stream retains (its MAXLEN): no read asks one topic for more. */
    private readonly perTopic: number,
  ) {}

  async snapshot(): Promise<Snapshot> {
    const [epoch, last] = await this.redis.runnelSnapshot(this.keys.epoch, this.keys.count, this.keys.firehose);
    return { epoch: epoch ?? undefined, head: idOf(last) };
  }

  /** The topics `pattern` covers that exist in the dataset (an exact topic is returned as is). */
  async topics(pattern: string): Promise<string[]> {
    if (!isPattern(pattern)) return [pattern];
    const all = await this.redis.hkeys(this.keys.seqs);
    return all.filter((t) => matches(pattern, t));
  }

  /** Up to `count` entries of each topic with ids after `after`, oldest first. */
  async after(topics: readonly string[], after: StreamId, count: number, epoch: string): Promise<Map<string, RedisEntry[]>> {
    const replies = await this.each(topics, (t) => ["XRANGE", this.keys.topic(t), `(${after.text}`, "+", "COUNT", String(count)]);
    const out = new Map<string, RedisEntry[]>();
    topics.forEach((t, i) => out.set(t, replies[i]!.map((raw) => entryOf(raw, epoch, t))));
    return out;
  }

  /** Id of the oldest of the newest `count` events across `topics`, or undefined when they hold none. */
  async oldestOfNewest(topics: readonly string[], count: number): Promise<StreamId | undefined> {
    const each = Math.min(count, this.perTopic);
    const replies = await this.each(topics, (t) => ["XREVRANGE", this.keys.topic(t), "+", "-", "COUNT", String(each)]);
    const ids = replies.flatMap((r) => r.map((raw) => idOf(raw[0].toString("latin1"))));
    if (ids.length === 0) return undefined;
    ids.sort((a, b) => compareIds(b, a));
    return ids[Math.min(count, ids.length) - 1];
  }

  /** Id of the newest event trimmed from `topic`'s stream (0-0 when none was). */
  async newestTrimmed(topic: string): Promise<StreamId> {
    return idOf((await this.redis.hget(this.keys.trimmed, topic)) ?? "0-0");
  }

  /** Runs one command per topic in a single pipeline; throws the first error. */
  private async each(topics: readonly string[], command: (topic: string) => string[]): Promise<RawEntry[][]> {
    if (topics.length === 0) return [];
    const pipeline = this.redis.pipeline();
    for (const t of topics) {
      const [name, ...args] = command(t);
      pipeline.callBuffer(name!, args);
    }
    const results = (await pipeline.exec()) ?? [];
    return results.map(([err, reply]) => {
      if (err) throw err;
      return reply as RawEntry[];
    });
  }
}
