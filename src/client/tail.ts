/**
 * `tail()`: TailService.Tail as a stream that resumes by itself, like
 * `subscribe()`: after a lost connection or the server's Closing it asks for
 * the lines after the last cursor it saw. Lines the file no longer has are
 * reported by the server as a `file_event` (LOST or TRUNCATED).
 */
import { createClient, type Transport } from "@connectrpc/connect";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { TailService, type TailRequestSchema, type TailResponse } from "../../gen/runnel/v1/tail_pb.js";
import { ResumableStream, type Progress, type ResumeOptions } from "./resumable.js";

/** A Tail request, as connect-es accepts it. */
export type TailInit = MessageInitShape<typeof TailRequestSchema> & { path: string };

/**
 * Follow a file on the server. Iterate the result with `for await`; leaving
 * the loop (break, return, throw) or aborting `options.signal` cancels the
 * server stream at once. With `follow: false` the stream ends after the last
 * lines, as the server ends it.
 */
export function tail(transport: Transport, request: TailInit, options: ResumeOptions = {}): ResumableStream<TailResponse> {
  const client = createClient(TailService, transport);
  // Asking for no old lines means "from the end as it is now": the head cursor of TailStarted is that position.
  const fromHead = request.lines === 0;
  return new ResumableStream<TailResponse>(
    {
      open(cursor, signal) {
        const resumed = cursor === "" ? request : { ...request, afterCursor: cursor };
        return client.tail(resumed, { signal });
      },
      progress(message, cursor): Progress {
        const k = message.kind;
        switch (k.case) {
          case "line":
            return { cursor: k.value.cursor, data: true };
          case "fileEvent":
            return { cursor: k.value.cursor, data: true };
          case "heartbeat":
            return { cursor: k.value.cursor };
          case "closing":
            return { cursor: k.value.resumeCursor, closingRetryAfterMs: k.value.retryAfterMs };
          case "started":
            // The heartbeat interval in force sets how long a silence means a dead connection.
            return fromHead && cursor === "" ? { cursor: k.value.headCursor, heartbeatMs: k.value.heartbeatMs } : { heartbeatMs: k.value.heartbeatMs };
          default:
            return {};
        }
      },
    },
    options,
    request.afterCursor ?? "",
  );
}
