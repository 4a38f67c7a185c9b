/**
 * How a tail stream's events become TailResponse messages, and the messages
 * the stream core needs from a Tail stream (heartbeat, closing, cursors).
 */
import { create } from "@bufbuild/protobuf";
import { timestampFromMs, timestampNow } from "@bufbuild/protobuf/wkt";
import type { StreamMessages } from "../stream/live-stream.js";
import type { GenerationChange } from "../tail/file-source.js";
import type { SplitLine } from "../tail/line-splitter.js";
import { FileEventKind, TailResponseSchema, type TailResponse } from "../../gen/runnel/v1/tail_pb.js";
import { CLOSING_REASON } from "./subscribe-messages.js";

const FILE_EVENT_KIND: Record<GenerationChange | "lost", FileEventKind> = {
  rotated: FileEventKind.ROTATED,
  truncated: FileEventKind.TRUNCATED,
  deleted: FileEventKind.DELETED,
  created: FileEventKind.CREATED,
  lost: FileEventKind.LOST,
};

/** The TailStarted message that opens every tail stream. */
export function startedMessage(streamId: string, path: string, heartbeatMs: number, exists: boolean, headCursor: string): TailResponse {
  return create(TailResponseSchema, { kind: { case: "started", value: { streamId, path, heartbeatMs, exists, headCursor } } });
}

/** The Line message of one line. */
export function lineMessage(line: SplitLine, cursor: string): TailResponse {
  return create(TailResponseSchema, {
    kind: {
      case: "line",
      value: {
        text: line.text,
        cursor,
        offset: BigInt(line.offset),
        truncated: line.truncated,
        partial: line.partial,
        replaced: line.replaced,
        time: timestampFromMs(Date.now()),
      },
    },
  });
}

/** The FileEvent message of a change of the followed file. */
export function fileEventMessage(change: GenerationChange | "lost", message: string, cursor: string, lostBytes: number): TailResponse {
  return create(TailResponseSchema, {
    kind: { case: "fileEvent", value: { kind: FILE_EVENT_KIND[change], message, cursor, lostBytes: BigInt(lostBytes) } },
  });
}

/** The messages the stream core needs from a Tail stream. Tail has no drop-oldest policy. */
export const tailMessages: StreamMessages<TailResponse> = {
  heartbeat(cursor) {
    return create(TailResponseSchema, { kind: { case: "heartbeat", value: { time: timestampNow(), cursor } } });
  },
  closing(cause, resumeCursor, retryAfterMs, message) {
    return create(TailResponseSchema, {
      kind: { case: "closing", value: { reason: CLOSING_REASON[cause], resumeCursor, retryAfterMs, message } },
    });
  },
  cursorOf(message) {
    const k = message.kind;
    if (k.case === "line") return k.value.cursor;
    if (k.case === "fileEvent" && k.value.cursor !== "") return k.value.cursor;
    return undefined;
  },
  dropKey() {
    return undefined;
  },
  dropped() {
    throw new Error("tail streams never drop lines (no drop-oldest policy)");
  },
};
