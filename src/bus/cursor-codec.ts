/**
 * Memory-bus cursors: the opaque strings clients hold to resume a stream.
 * A cursor is base64url (no padding) of `m1:<epoch>:<global>:<seq>:<topic>`:
 * the bus instance it came from, the bus-wide position of the event, the
 * event's seq in its topic, and the topic. Encoding and parsing live here so
 * the format is defined in exactly one place.
 */

/** The decoded fields of a memory-bus cursor. */
export interface CursorParts {
  /** Random id of the bus instance that issued the cursor (12 hex digits). */
  readonly epoch: string;
  /** Bus-wide position of the event; 0 means "before every event". */
  readonly global: number;
  /** Seq of the event in its topic; 0 together with an empty topic. */
  readonly seq: number;
  /** Topic of the event; empty for the "before every event" cursor. */
  readonly topic: string;
}

/** Longest cursor string accepted; a cursor holds a topic of at most 256 characters plus a few numbers. */
export const MAX_CURSOR_LENGTH = 1024;

const PREFIX = "m1";
const BASE64URL = /^[A-Za-z0-9_-]+$/;
const TEXT = /^m1:([0-9a-f]{12}):(0|[1-9][0-9]{0,15}):(0|[1-9][0-9]{0,15}):(.*)$/s;

/** The refusal of a string that is no cursor of this bus. */
export const NOT_OURS = "cursor is not a runnel cursor (it must be a value taken from an event, a heartbeat or a Closing message)";

/**
 * The text inside a cursor (any bus's format: base64url without padding), or
 * the problem with it. Strings that only decode by ignoring trailing bits are
 * refused, so one cursor has one spelling.
 */
export function cursorText(cursor: string): string | { readonly problem: string } {
  if (cursor.length === 0) return { problem: "cursor is empty" };
  if (cursor.length > MAX_CURSOR_LENGTH || !BASE64URL.test(cursor)) return { problem: NOT_OURS };
  const bytes = Buffer.from(cursor, "base64url");
  if (bytes.toString("base64url") !== cursor) return { problem: NOT_OURS };
  return bytes.toString("utf8");
}

/** Turns cursor fields into the opaque string handed to clients. */
export function encodeCursor(parts: CursorParts): string {
  const text = `${PREFIX}:${parts.epoch}:${parts.global}:${parts.seq}:${parts.topic}`;
  return Buffer.from(text, "utf8").toString("base64url");
}

/**
 * Parses a cursor string. Returns a human-readable problem instead of parts
 * when the string is not a memory-bus cursor, so the bus can report it as an
 * invalid request.
 */
export function decodeCursor(cursor: string): CursorParts | string {
  const text = cursorText(cursor);
  if (typeof text !== "string") return text.problem;
  const m = TEXT.exec(text);
  if (m === null) return NOT_OURS;
  const global = Number(m[2]);
  const seq = Number(m[3]);
  const topic = m[4]!;
  if (!Number.isSafeInteger(global) || !Number.isSafeInteger(seq)) return NOT_OURS;
  if ((topic === "") !== (seq === 0)) return NOT_OURS;
  if (topic !== "" && global === 0) return NOT_OURS;
  return { epoch: m[1]!, global, seq, topic };
}
