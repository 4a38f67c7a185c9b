/**
 * Turns a subscription's start position into a replay plan against the
 * memory bus's current state: which topics to replay from which seq, and what
 * to ignore afterwards. All validation of start positions (cursors, from_seq,
 * last) happens here, so a bad request fails before anything is registered.
 */

import { BusError, type StartPosition } from "./bus.js";
import { decodeCursor, encodeCursor } from "./cursor-codec.js";
import { MinHeap } from "./memory-heap.js";
import type { ReplayPlan } from "./memory-subscription.js";
import type { TopicIndex } from "./memory-topic-index.js";
import { isPattern } from "./topic.js";
import type { TopicLog } from "./topic-log.js";

/** The bus state a plan is computed from. */
export interface StartContext {
  readonly topics: TopicIndex<TopicLog>;
  /** Id of this bus instance, as written into its cursors. */
  readonly epoch: string;
  /** Global position of the newest event (0 before the first). */
  readonly head: number;
}

type Head = { readonly log: TopicLog; readonly nextSeq: number };

/** Computes the plan for `start` on `pattern`, or throws BusError("invalid"). */
export function planStart(pattern: string, start: StartPosition, ctx: StartContext): ReplayPlan {
  switch (start.kind) {
    case "live":
      return livePlan(ctx, 0);
    case "earliest":
      return earliestPlan(pattern, ctx, false);
    case "last":
      return lastPlan(pattern, start.count, ctx);
    case "fromSeq":
      return fromSeqPlan(pattern, start.seq, ctx);
    case "afterCursor":
      return afterCursorPlan(pattern, start.cursor, ctx);
  }
}

function livePlan(ctx: StartContext, minSeq: number): ReplayPlan {
  return { heads: [], position: ctx.head, minSeq, reset: false };
}

function earliestPlan(pattern: string, ctx: StartContext, reset: boolean): ReplayPlan {
  const heads: Head[] = [];
  forEachLog(pattern, ctx, (log) => {
    if (log.count > 0) heads.push({ log, nextSeq: log.firstSeq });
  });
  return { heads, position: 0, minSeq: 0, reset };
}

function lastPlan(pattern: string, count: number, ctx: StartContext): ReplayPlan {
  if (!Number.isSafeInteger(count) || count < 0) {
    throw new BusError("invalid", `last must be a whole number of events >= 0, got ${count}`);
  }
  if (count === 0) return livePlan(ctx, 0);
  // Walk the matching logs backwards, newest first, taking `count` events in global order.
  interface Back {
    readonly log: TopicLog;
    seq: number;
    key: number;
  }
  const newestFirst = new MinHeap<Back>();
  forEachLog(pattern, ctx, (log) => {
    if (log.count > 0) newestFirst.push({ log, seq: log.lastSeq, key: -log.globalAt(log.lastSeq) });
  });
  const firstTaken = new Map<TopicLog, number>();
  let oldestGlobal = ctx.head + 1;
  for (let taken = 0; taken < count; taken++) {
    const b = newestFirst.pop();
    if (b === undefined) break;
    firstTaken.set(b.log, b.seq);
    oldestGlobal = -b.key;
    if (b.seq > b.log.firstSeq) {
      b.seq--;
      b.key = -b.log.globalAt(b.seq);
      newestFirst.push(b);
    }
  }
  const heads: Head[] = [];
  for (const [log, nextSeq] of firstTaken) heads.push({ log, nextSeq });
  return { heads, position: oldestGlobal - 1, minSeq: 0, reset: false };
}

function fromSeqPlan(pattern: string, seq: bigint, ctx: StartContext): ReplayPlan {
  if (isPattern(pattern)) {
    throw new BusError("invalid", `from_seq needs an exact topic, not a pattern like "${pattern}"`);
  }
  if (seq < 1n) throw new BusError("invalid", "from_seq must be 1 or more (seqs count from 1)");
  // Seqs beyond 2^53 are never reached; clamping keeps the arithmetic in plain numbers.
  const from = seq > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : Number(seq);
  const log = ctx.topics.get(pattern);
  if (log === undefined || from > log.lastSeq) return livePlan(ctx, from);
  return { heads: [{ log, nextSeq: from }], position: 0, minSeq: from, reset: false };
}

function afterCursorPlan(pattern: string, cursor: string, ctx: StartContext): ReplayPlan {
  const parts = decodeCursor(cursor);
  if (typeof parts === "string") throw new BusError("invalid", parts);
  if (parts.epoch !== ctx.epoch) {
    // Another bus instance (a restart): what it held is gone. Say so, then start from what exists.
    return earliestPlan(pattern, ctx, true);
  }
  if (parts.global > ctx.head) {
    throw new BusError("invalid", `cursor is ahead of the newest event of this bus (position ${parts.global} > ${ctx.head})`);
  }
  let own: TopicLog | undefined;
  if (parts.topic !== "") {
    own = ctx.topics.get(parts.topic);
    const known =
      own !== undefined &&
      parts.seq <= own.lastSeq &&
      (parts.seq < own.firstSeq || own.globalAt(parts.seq) === parts.global);
    if (!known) throw new BusError("invalid", "cursor does not match any event of this bus");
  }
  const heads: Head[] = [];
  forEachLog(pattern, ctx, (log) => {
    // The cursor's own topic resumes exactly after its seq; other topics after its global position
    // (a lower bound where that part of the topic was trimmed; see SeqCheckpoints).
    const nextSeq = log === own ? parts.seq + 1 : log.firstSeqAfter(parts.global);
    if (nextSeq <= log.lastSeq) heads.push({ log, nextSeq });
  });
  return { heads, position: parts.global, minSeq: 0, reset: false };
}

function forEachLog(pattern: string, ctx: StartContext, visit: (log: TopicLog) => void): void {
  if (!isPattern(pattern)) {
    const log = ctx.topics.get(pattern);
    if (log !== undefined) visit(log);
    return;
  }
  ctx.topics.forEachMatching(pattern, visit);
}

/**
 * The cursor that resumes exactly where `plan` starts, so a stream that ends
 * before its first event still hands its client a usable resume cursor.
 */
export function startCursorOf(pattern: string, start: StartPosition, plan: ReplayPlan, ctx: StartContext): string {
  if (start.kind === "afterCursor" && !plan.reset) return start.cursor;
  if (start.kind !== "fromSeq" || plan.minSeq <= 1) {
    // Live, earliest, last N: everything after the plan's global position.
    return encodeCursor({ epoch: ctx.epoch, global: plan.position, seq: 0, topic: "" });
  }
  const log = ctx.topics.get(pattern);
  const before = plan.minSeq - 1;
  if (log === undefined || before > log.lastSeq) return ""; // a seq nobody has published yet: no cursor says that
  // Right after seq `before` of this topic; if it was trimmed, any position before the first retained event will do
  // (in a log the bus-wide bound emptied, the position of its newest event, which is at or after `before`).
  const global =
    before >= log.firstSeq ? log.globalAt(before) : log.count > 0 ? log.globalAt(log.firstSeq) - 1 : log.lastGlobal;
  return encodeCursor({ epoch: ctx.epoch, global, seq: before, topic: pattern });
}
