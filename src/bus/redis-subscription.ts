/**
 * One subscription on the Redis bus. It replays retained history from the
 * topic streams in rounds (bounded reads, merged by stream id), then goes live
 * on the node's firehose fan-out, without loss or duplicates:
 *
 * - `position` is the id of the last event handled; everything after it is
 *   still to come, from replay or live.
 * - A round first reads the firehose head H, then each topic's entries after
 *   `position`. When no topic has more than one batch, every event up to H
 *   has been seen; live events the reader dispatched while the round was in
 *   flight were captured in a bounded buffer (the reader is never ahead of H
 *   when the round starts), so the ones after H are delivered from it and the
 *   subscription is live in the same synchronous step.
 * - When the sink is full, the round stops and resumes with a new round from
 *   `position` when the stream drains.
 *
 * The reader can send a live subscription back to replay (`resync`) when it
 * missed firehose entries or Redis lost its data.
 */
import type { Logger } from "pino";
import { type BusSubscription, BusError, type DeliverySink, type StoredEvent } from "./bus.js";
import type { RedisEntry } from "./redis-entries.js";
import { batchSize, type RedisHistory } from "./redis-history.js";
import { compareIds, idBefore, maxId, ZERO_ID, type StreamId } from "./redis-ids.js";
import { SinkCalls } from "./sink-calls.js";

/** How a subscription starts; computed by the bus from the start position. */
export interface RedisStart {
  /** Events up to this id are not delivered. */
  readonly position: StreamId;
  /** Start live at once (no replay). */
  readonly live: boolean;
  /** Seqs of `floor.topic` below `floor.seq` are never delivered; a missing `floor.seq` is reported as a gap. */
  readonly floor?: { readonly topic: string; readonly seq: number };
  /** The epoch of the cursor this start came from; another dataset's cursor means a RESET gap. */
  readonly cursorEpoch?: string;
  /** Replay the last N events. */
  readonly last?: number;
  /** Report trimmed history of topics seen for the first time (a resume after a cursor). */
  readonly checkTrimmed: boolean;
}

/** What a subscription needs from its bus. */
export interface RedisSubscriptionHost {
  readonly history: RedisHistory;
  readonly log: Logger;
  detach(subscription: RedisSubscription): void;
  /** Reports an exception thrown by a sink (the subscription is closed after it). */
  sinkFailed(error: unknown): void;
}

/** Live events buffered per round at most; more and the round is repeated. */
const ROUND_BUFFER = 10_000;

/** A Redis-bus subscription. */
export class RedisSubscription extends SinkCalls implements BusSubscription {
  private live: boolean;
  private paused = false;
  private inFlight = false;
  private generation = 0;
  private retries = 0;
  private retryTimer: NodeJS.Timeout | undefined;
  private position: StreamId;
  private floor: { readonly topic: string; readonly seq: number } | undefined;
  private cursorEpoch: string | undefined;
  private last: number | undefined;
  private checkTrimmed: boolean;
  private resetPending = false;
  /** Next seq expected per topic during replay (for gap reports); dropped when live. */
  private expected: Map<string, number> | undefined;
  /** Live events captured while a round is in flight. */
  private buffer: RedisEntry[] | undefined;
  private bufferOverflow = false;

  constructor(
    /** The exact topic or pattern subscribed to. */
    readonly pattern: string,
    sink: DeliverySink,
    private readonly host: RedisSubscriptionHost,
    /** See BusSubscription.startCursor. */
    readonly startCursor: string,
    start: RedisStart,
  ) {
    super(sink, host);
    this.position = start.position;
    this.live = start.live;
    this.floor = start.floor;
    this.cursorEpoch = start.cursorEpoch;
    this.last = start.last;
    this.checkTrimmed = start.checkTrimmed;
    if (start.floor !== undefined) this.expected = new Map([[start.floor.topic, start.floor.seq]]);
  }

  /** Begins the replay (if any). */
  start(): void {
    if (!this.live) void this.round();
  }

  /** Called by the bus for every firehose event whose topic matches, in firehose order. */
  offer(entry: RedisEntry): void {
    if (this.closed || compareIds(entry.id, this.position) <= 0) return;
    if (this.live) {
      this.position = entry.id;
      if (!this.belowFloor(entry.event)) this.send(entry.event);
      return;
    }
    if (this.buffer !== undefined) {
      if (this.buffer.length < ROUND_BUFFER) this.buffer.push(entry);
      else this.bufferOverflow = true;
    }
  }

  /** The reader missed events (`gap`) or the dataset was replaced (`reset`): replay from history. */
  resync(reason: "gap" | "reset"): void {
    if (this.closed) return;
    this.generation++;
    this.live = false;
    this.buffer = undefined;
    this.inFlight = false;
    if (reason === "reset") {
      this.resetPending = true;
      this.position = ZERO_ID;
      this.floor = undefined;
      this.expected = undefined;
      this.checkTrimmed = false;
      this.last = undefined;
      this.cursorEpoch = undefined;
    } else {
      this.checkTrimmed = true;
    }
    if (!this.paused) void this.round();
  }

  resume(): void {
    if (!this.paused || this.closed) return;
    this.paused = false;
    void this.round();
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.buffer = undefined;
    this.expected = undefined;
    clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    this.host.detach(this);
  }

  /** One replay round; see the file comment. */
  private async round(): Promise<void> {
    if (this.closed || this.live || this.inFlight || this.paused) return;
    this.inFlight = true;
    const generation = ++this.generation;
    this.buffer = [];
    this.bufferOverflow = false;
    const stale = (): boolean => this.closed || generation !== this.generation;
    try {
      const history = this.host.history;
      const snap = await history.snapshot();
      if (stale()) return;
      const epoch = snap.epoch ?? "";
      if (this.cursorEpoch !== undefined) {
        if (this.cursorEpoch !== epoch) {
          this.resetPending = true;
          this.position = ZERO_ID;
          this.floor = undefined;
          this.expected = undefined;
          this.checkTrimmed = false;
        } else if (compareIds(this.position, snap.head) > 0) {
          throw new BusError("invalid", `cursor is ahead of the newest event of this bus (${this.position.text} > ${snap.head.text})`);
        }
        this.cursorEpoch = undefined;
      }
      const topics = await history.topics(this.pattern);
      if (stale()) return;
      if (this.last !== undefined) {
        const oldest = await history.oldestOfNewest(topics, this.last);
        if (stale()) return;
        this.position = oldest === undefined ? snap.head : idBefore(oldest);
        this.last = undefined;
      }
      const count = batchSize(topics.length);
      const from = this.position;
      const batches = await history.after(topics, from, count, epoch);
      if (stale()) return;
      let bound = snap.head;
      let more = false;
      for (const entries of batches.values()) {
        if (entries.length === count) {
          more = true;
          bound = compareIds(entries[count - 1]!.id, bound) < 0 ? entries[count - 1]!.id : bound;
        }
      }
      const merged: RedisEntry[] = [];
      for (const entries of batches.values()) for (const e of entries) if (compareIds(e.id, bound) <= 0) merged.push(e);
      merged.sort((a, b) => compareIds(a.id, b.id));
      const trimmed = this.checkTrimmed ? await this.trimmedTopics(merged, from) : undefined;
      if (stale()) return;
      this.inFlight = false;
      this.retries = 0;
      if (!this.deliver(merged, trimmed)) return;
      this.position = maxId(this.position, bound);
      if (more) {
        this.buffer = undefined;
        void this.round();
        return;
      }
      this.goLive();
    } catch (error) {
      if (stale()) return;
      this.inFlight = false;
      this.buffer = undefined;
      if (error instanceof BusError) {
        this.failWith(error);
        return;
      }
      this.retries++;
      const delay = Math.min(2_000, 100 * 2 ** Math.min(this.retries, 5));
      this.host.log.debug({ err: (error as Error).message, delay }, "redis bus: replay read failed; retrying");
      this.retryTimer = setTimeout(() => {
        this.retryTimer = undefined;
        void this.round();
      }, delay);
    }
  }

  /** Topics first seen in this round whose history after `from` was partly trimmed. */
  private async trimmedTopics(merged: readonly RedisEntry[], from: StreamId): Promise<Set<string>> {
    const out = new Set<string>();
    const candidates = new Set<string>();
    for (const e of merged) {
      if (this.expected?.has(e.event.topic) !== true && e.event.seq > 1n) candidates.add(e.event.topic);
    }
    for (const topic of candidates) {
      if (compareIds(await this.host.history.newestTrimmed(topic), from) > 0) out.add(topic);
    }
    return out;
  }

  /** Delivers replayed entries in order while the sink wants them; false when it paused or closed. */
  private deliver(merged: readonly RedisEntry[], trimmed: Set<string> | undefined): boolean {
    if (this.resetPending) {
      if (!this.wantsMore()) return this.pause();
      this.resetPending = false;
      this.sendGap({ topic: this.pattern, fromSeq: 0n, toSeq: 0n, cause: "reset" });
    }
    for (const e of merged) {
      if (this.closed) return false;
      const event = e.event;
      if (this.belowFloor(event)) {
        this.position = e.id;
        continue;
      }
      if (!this.wantsMore()) return this.pause();
      const seq = Number(event.seq);
      const expected = this.expected?.get(event.topic) ?? (trimmed?.has(event.topic) === true ? 1 : undefined);
      this.position = e.id;
      (this.expected ??= new Map()).set(event.topic, seq + 1);
      if (expected !== undefined && seq > expected) {
        this.sendGap({ topic: event.topic, fromSeq: BigInt(expected), toSeq: BigInt(seq - 1), cause: "trimmed" });
        if (this.closed) return false;
      }
      this.send(event);
    }
    return !this.closed;
  }

  private pause(): false {
    this.paused = true;
    this.buffer = undefined;
    return false;
  }

  /** Caught up to the round's head: deliver the live events captured meanwhile and go live. */
  private goLive(): void {
    const buffered = this.buffer ?? [];
    const overflow = this.bufferOverflow;
    this.buffer = undefined;
    if (overflow) {
      void this.round();
      return;
    }
    this.live = true;
    this.expected = undefined;
    for (const e of buffered) this.offer(e);
  }

  private belowFloor(event: StoredEvent): boolean {
    return this.floor !== undefined && event.topic === this.floor.topic && Number(event.seq) < this.floor.seq;
  }
}
