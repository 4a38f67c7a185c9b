/**
 * Redis stream ids ("<ms>-<n>") as numbers, so the live path compares two
 * ids with two subtractions instead of parsing strings. Every runnel event
 * has one id, given by the firehose XADD and reused in its topic's stream,
 * so ids order events across topics and nodes.
 */

/** A parsed stream id. Both parts stay below 2^53 in practice (ms since 1970; entries per ms). */
export interface StreamId {
  readonly ms: number;
  readonly n: number;
  /** The id as Redis spells it. */
  readonly text: string;
}

/** The id before every entry. */
export const ZERO_ID: StreamId = Object.freeze({ ms: 0, n: 0, text: "0-0" });

const ID = /^(0|[1-9][0-9]{0,15})-(0|[1-9][0-9]{0,15})$/;

/** Parses "<ms>-<n>"; undefined when it is not a stream id this code can represent exactly. */
export function parseId(text: string): StreamId | undefined {
  const m = ID.exec(text);
  if (m === null) return undefined;
  const ms = Number(m[1]);
  const n = Number(m[2]);
  if (!Number.isSafeInteger(ms) || !Number.isSafeInteger(n)) return undefined;
  return { ms, n, text };
}

/** Parses an id Redis returned; throws when Redis sent something that is not an id. */
export function idOf(text: string): StreamId {
  const id = parseId(text);
  if (id === undefined) throw new Error(`redis returned an unexpected stream id "${text}"`);
  return id;
}

/** Negative, zero or positive as `a` is before, equal to or after `b`. */
export function compareIds(a: StreamId, b: StreamId): number {
  return a.ms - b.ms || a.n - b.n;
}

/** The later of two ids. */
export function maxId(a: StreamId, b: StreamId): StreamId {
  return compareIds(a, b) >= 0 ? a : b;
}

/** The greatest id strictly before `id` that this code represents (for "start at this entry" as an exclusive bound). */
export function idBefore(id: StreamId): StreamId {
  if (id.n > 0) return { ms: id.ms, n: id.n - 1, text: `${id.ms}-${id.n - 1}` };
  if (id.ms === 0) return ZERO_ID;
  const n = Number.MAX_SAFE_INTEGER;
  return { ms: id.ms - 1, n, text: `${id.ms - 1}-${n}` };
}
