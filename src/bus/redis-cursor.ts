/**
 * Redis-bus cursors: base64url (no padding) of `r1:<epoch>:<id>:<seq>:<topic>`,
 * where epoch names the Redis dataset (a random id stored in Redis itself, so
 * every node issues and accepts the same cursors), id is the event's stream id
 * and seq its seq in its topic. The "before every event" cursor has id 0-0,
 * seq 0 and no topic; a from_seq start is expressed as id 0-0 with seq
 * from-1 of the topic. Defined here only; the memory bus has its own format.
 */
import { cursorText, NOT_OURS } from "./cursor-codec.js";
import { parseId, type StreamId } from "./redis-ids.js";

/** The decoded fields of a Redis-bus cursor. */
export interface RedisCursorParts {
  /** Id of the Redis dataset that issued it; "" when the node had not reached Redis yet. */
  readonly epoch: string;
  readonly id: StreamId;
  readonly seq: number;
  readonly topic: string;
}

const PREFIX = "r1";
const TEXT = /^r1:([0-9a-f]{0,32}):([0-9]+-[0-9]+):(0|[1-9][0-9]{0,15}):(.*)$/s;

/** Turns cursor fields into the opaque string handed to clients. */
export function encodeRedisCursor(epoch: string, id: StreamId, seq: number | bigint, topic: string): string {
  return Buffer.from(`${PREFIX}:${epoch}:${id.text}:${seq}:${topic}`, "utf8").toString("base64url");
}

/** Parses a cursor; returns a human-readable problem when it is not a Redis-bus cursor. */
export function decodeRedisCursor(cursor: string): RedisCursorParts | string {
  const text = cursorText(cursor);
  if (typeof text !== "string") return text.problem;
  const m = TEXT.exec(text);
  if (m === null) {
    return text.startsWith("m1:") ? "cursor comes from the in-memory bus of a single node; this server runs the Redis bus" : NOT_OURS;
  }
  const id = parseId(m[2]!);
  const seq = Number(m[3]);
  const topic = m[4]!;
  if (id === undefined || !Number.isSafeInteger(seq)) return NOT_OURS;
  if ((topic === "") !== (seq === 0)) return NOT_OURS;
  return { epoch: m[1]!, id, seq, topic };
}
