/**
 * `subscribe()`: EventService.Subscribe as a stream that resumes by itself.
 * After Unavailable, a lost connection (reset, refused, an HTTP/2 session
 * closed by GOAWAY or by node's rapid-reset guard) or the server's Closing,
 * it subscribes again after the last cursor it saw, so nothing the server
 * still retains is lost; what is gone arrives as a Gap message. Every
 * message is passed on as the server sent it: a new `subscribed` marks each
 * (re)connection.
 */
import { createClient, type Transport } from "@connectrpc/connect";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { EventService, type SubscribeRequestSchema, type SubscribeResponse } from "../../gen/runnel/v1/event_pb.js";
import { ResumableStream, type Progress, type ResumeOptions } from "./resumable.js";

/** A Subscribe request, as connect-es accepts it. */
export type SubscribeInit = MessageInitShape<typeof SubscribeRequestSchema> & { topic: string };

/**
 * Subscribe to a topic or pattern and keep the subscription alive across
 * server restarts and network failures. Iterate the result with `for await`;
 * leaving the loop (break, return, throw) or aborting `options.signal`
 * cancels the server stream at once.
 */
export function subscribe(transport: Transport, request: SubscribeInit, options: ResumeOptions = {}): ResumableStream<SubscribeResponse> {
  const client = createClient(EventService, transport);
  const live = request.start === undefined || request.start.case === undefined;
  const startCursor = request.start?.case === "afterCursor" ? request.start.value : "";
  return new ResumableStream<SubscribeResponse>(
    {
      open(cursor, signal) {
        // Resume right after the last position; with none yet, the original start still applies.
        const resumed = cursor === "" ? request : { ...request, start: { case: "afterCursor" as const, value: cursor } };
        return client.subscribe(resumed, { signal });
      },
      progress(message, cursor): Progress {
        const k = message.kind;
        switch (k.case) {
          case "event":
            return { cursor: k.value.cursor, data: true };
          case "heartbeat":
            return { cursor: k.value.cursor };
          case "closing":
            return { cursor: k.value.resumeCursor, closingRetryAfterMs: k.value.retryAfterMs };
          case "subscribed":
            // A live subscription sees every publish after the head it was given: resume from there.
            // The heartbeat interval in force sets how long a silence means a dead connection.
            return live && cursor === "" ? { cursor: k.value.headCursor, heartbeatMs: k.value.heartbeatMs } : { heartbeatMs: k.value.heartbeatMs };
          default:
            return {};
        }
      },
    },
    options,
    startCursor,
  );
}
