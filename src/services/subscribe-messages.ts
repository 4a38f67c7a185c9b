/**
 * How bus deliveries become SubscribeResponse messages. The Event message of
 * a stored event is built once and shared by every subscriber that receives
 * it (protobuf-es messages are plain objects; nobody mutates them).
 */
import { create } from "@bufbuild/protobuf";
import { timestampFromMs, timestampNow } from "@bufbuild/protobuf/wkt";
import type { GapCause, GapNotice, StoredEvent } from "../bus/bus.js";
import type { StreamMessages } from "../stream/live-stream.js";
import type { ServerEndCause } from "../stream/ledger.js";
import {
  ClosingReason,
  GapReason,
  SubscribeResponseSchema,
  type SubscribeResponse,
} from "../../gen/runnel/v1/event_pb.js";

const eventMessages = new WeakMap<StoredEvent, SubscribeResponse>();

/** The (shared) SubscribeResponse carrying a stored event. */
export function eventMessage(event: StoredEvent): SubscribeResponse {
  let message = eventMessages.get(event);
  if (message === undefined) {
    message = create(SubscribeResponseSchema, {
      kind: {
        case: "event",
        value: {
          topic: event.topic,
          seq: event.seq,
          cursor: event.cursor,
          data: event.data,
          headers: { ...event.headers },
          time: timestampFromMs(event.timeMs),
        },
      },
    });
    eventMessages.set(event, message);
  }
  return message;
}

const GAP_REASON: Record<GapCause, GapReason> = {
  trimmed: GapReason.TRIMMED,
  dropped: GapReason.DROPPED,
  reset: GapReason.RESET,
};

/** The Gap message for a bus gap notice. */
export function gapMessage(gap: GapNotice): SubscribeResponse {
  return create(SubscribeResponseSchema, {
    kind: {
      case: "gap",
      value: { topic: gap.topic, fromSeq: gap.fromSeq, toSeq: gap.toSeq, reason: GAP_REASON[gap.cause] },
    },
  });
}

/** The Subscribed message that opens every subscription. */
export function subscribedMessage(id: string, heartbeatMs: number, headCursor: string): SubscribeResponse {
  return create(SubscribeResponseSchema, {
    kind: { case: "subscribed", value: { subscriptionId: id, heartbeatMs, headCursor } },
  });
}

/** The Closing reason a server-chosen end reports (shared by every stream kind). */
export const CLOSING_REASON: Record<ServerEndCause, ClosingReason> = {
  shutdown: ClosingReason.SHUTDOWN,
  lifetime: ClosingReason.LIFETIME,
  slow_consumer: ClosingReason.SLOW_CONSUMER,
  admin: ClosingReason.ADMIN,
  dead_peer: ClosingReason.UNSPECIFIED,
  error: ClosingReason.UNSPECIFIED,
};

/** The messages the stream core needs from the Subscribe stream. */
export const subscribeMessages: StreamMessages<SubscribeResponse> = {
  heartbeat(cursor) {
    return create(SubscribeResponseSchema, { kind: { case: "heartbeat", value: { time: timestampNow(), cursor } } });
  },
  closing(cause, resumeCursor, retryAfterMs, message) {
    return create(SubscribeResponseSchema, {
      kind: { case: "closing", value: { reason: CLOSING_REASON[cause], resumeCursor, retryAfterMs, message } },
    });
  },
  cursorOf(message) {
    return message.kind.case === "event" ? message.kind.value.cursor : undefined;
  },
  dropKey(message) {
    return message.kind.case === "event" ? { key: message.kind.value.topic, seq: message.kind.value.seq } : undefined;
  },
  dropped(topic, fromSeq, toSeq) {
    return gapMessage({ topic, fromSeq, toSeq, cause: "dropped" });
  },
};
