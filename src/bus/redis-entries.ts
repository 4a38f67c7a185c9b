/**
 * Stream entries as Redis returns them (RESP2 arrays of Buffers) turned into
 * the bus's StoredEvents. Topic streams hold fields s (seq), d (data) and h
 * (headers as JSON, "" for none); firehose entries also hold t (topic) and n
 * (the firehose position, for the continuity check).
 */
import type { StoredEvent } from "./bus.js";
import { EVENT_OVERHEAD_BYTES } from "./memory-bus.js";
import { encodeRedisCursor } from "./redis-cursor.js";
import { idOf, type StreamId } from "./redis-ids.js";

/** One event read from Redis, with its stream id. */
export interface RedisEntry {
  readonly id: StreamId;
  readonly event: StoredEvent;
  /** Firehose position (firehose entries only; 0 otherwise). */
  readonly n: number;
}

/** A raw entry: [id, [field, value, field, value, ...]]. */
export type RawEntry = [Buffer, Buffer[]];

/** Parses a raw entry of a topic stream (`topic` given) or of the firehose (`topic` undefined). */
export function entryOf(raw: RawEntry, epoch: string, topic?: string): RedisEntry {
  const id = idOf(raw[0].toString("latin1"));
  const fields = raw[1];
  let seq = 0;
  let n = 0;
  let data: Buffer = Buffer.alloc(0);
  let headersJson = "";
  let name = topic ?? "";
  for (let i = 0; i + 1 < fields.length; i += 2) {
    const key = fields[i]!.toString("latin1");
    const value = fields[i + 1]!;
    if (key === "d") data = value;
    else if (key === "s") seq = Number(value.toString("latin1"));
    else if (key === "h") headersJson = value.toString("utf8");
    else if (key === "t") name = value.toString("utf8");
    else if (key === "n") n = Number(value.toString("latin1"));
  }
  const headers: Record<string, string> = headersJson === "" ? {} : (JSON.parse(headersJson) as Record<string, string>);
  return { id, event: storedEvent(epoch, id, name, seq, data, headers), n };
}

/** The StoredEvent of an event of `topic` appended with `id` (its time is the id's milliseconds, Redis's clock). */
export function storedEvent(epoch: string, id: StreamId, topic: string, seq: number, data: Uint8Array, headers: Record<string, string>): StoredEvent {
  let size = data.length + topic.length + EVENT_OVERHEAD_BYTES;
  for (const k in headers) size += k.length + headers[k]!.length;
  return Object.freeze({
    topic,
    seq: BigInt(seq),
    cursor: encodeRedisCursor(epoch, id, seq, topic),
    data,
    headers: Object.freeze(headers),
    timeMs: id.ms,
    size,
  });
}

/** Headers as stored: "" when there are none, JSON otherwise. */
export function headersText(headers: Readonly<Record<string, string>>): string {
  for (const _ in headers) return JSON.stringify(headers);
  return "";
}
