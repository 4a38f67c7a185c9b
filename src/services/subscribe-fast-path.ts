/**
 * EventService.Subscribe on the lean write path: the route connect-es's
 * router maps to runnel's own framed stream handler (src/stream/fast-path.ts).
 * Publish and every other method stay on connect-es's handlers.
 */
import type { HandlerContext } from "@connectrpc/connect";
import type { UniversalHandler } from "@connectrpc/connect/protocol";
import { compressionBrotli, compressionGzip } from "@connectrpc/connect-node";
import type { Config } from "../config.js";
import { createFastStreamHandler } from "../stream/fast-path.js";
import { EventService } from "../../gen/runnel/v1/event_pb.js";
import { createFastSubscribe, type EventServiceDeps } from "./event-service.js";

/**
 * The universal handler for Subscribe; serve it with `fastRoute` (src/stream/fast-writer.ts) on its path.
 * `admit` does for it what the server's interceptors do for every other call (auth).
 */
export function createFastSubscribeHandler(deps: EventServiceDeps, config: Config, admit?: (ctx: HandlerContext) => Promise<void>): UniversalHandler {
  return createFastStreamHandler(EventService.method.subscribe, createFastSubscribe(deps), {
    // What connectNodeAdapter accepts by default, for requests (responses are never compressed here).
    acceptCompression: [compressionGzip, compressionBrotli],
    readMaxBytes: config.readMaxBytes,
    maxTimeoutMs: config.maxTimeoutMs,
    ...(admit !== undefined ? { admit } : {}),
  });
}

/** The request path of Subscribe. */
export const SUBSCRIBE_PATH = `/${EventService.typeName}/${EventService.method.subscribe.name}`;
