/**
 * The streaming methods served on the lean write path (src/stream/fast-path.ts):
 * EventService.Subscribe and TailService.Tail, each mapped from its request
 * path to runnel's own framed stream handler, in front of connect-es's
 * router. Unary methods, Health.Watch and reflection stay on connect-es.
 */
import type { DescMessage, DescMethodServerStreaming } from "@bufbuild/protobuf";
import type { HandlerContext } from "@connectrpc/connect";
import { compressionBrotli, compressionGzip } from "@connectrpc/connect-node";
import type { Config } from "../config.js";
import { createFastStreamHandler, type OpenFramed } from "../stream/fast-path.js";
import { EventService } from "../../gen/runnel/v1/event_pb.js";
import { TailService } from "../../gen/runnel/v1/tail_pb.js";
import type { UniversalHandler } from "@connectrpc/connect/protocol";

/** What the lean routes serve. */
export interface LeanStreams {
  readonly subscribe: OpenFramed<typeof EventService.method.subscribe.input, typeof EventService.method.subscribe.output>;
  readonly tail: OpenFramed<typeof TailService.method.tail.input, typeof TailService.method.tail.output>;
}

/**
 * Request path -> universal handler, for every lean method; serve each with
 * `fastRoute` (src/stream/fast-writer.ts). `admit` does for them what the
 * server's interceptors do for every other call (auth): connect-es's
 * interceptors never see a call served here.
 */
export function createLeanRoutes(streams: LeanStreams, config: Config, admit?: (ctx: HandlerContext) => Promise<void>): Map<string, UniversalHandler> {
  const routes = new Map<string, UniversalHandler>();
  const add = <I extends DescMessage, O extends DescMessage>(method: DescMethodServerStreaming<I, O>, open: OpenFramed<I, O>): void => {
    routes.set(
      `/${method.parent.typeName}/${method.name}`,
      createFastStreamHandler(method, open, {
        // What connectNodeAdapter accepts by default, for requests (responses are never compressed here).
        acceptCompression: [compressionGzip, compressionBrotli],
        readMaxBytes: config.readMaxBytes,
        maxTimeoutMs: config.maxTimeoutMs,
        ...(admit !== undefined ? { admit } : {}),
      }),
    );
  };
  add(EventService.method.subscribe, streams.subscribe);
  add(TailService.method.tail, streams.tail);
  return routes;
}
