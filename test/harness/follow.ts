/**
 * A resumable subscription (src/client) read in the background, recording
 * every event, gap, retry and (re)subscription, for the client tests that
 * break connections under it and then check exactly what it saw.
 */
import { ConnectError, type Transport } from "@connectrpc/connect";
import { subscribe, type RetryInfo, type SubscribeInit } from "../../src/client/index.js";
import type { Event, Gap } from "../../gen/runnel/v1/event_pb.js";

/** Subscribe to `request` (a topic, or a whole request) with fast retries, and read it until `stop()`. */
export function follow(transport: Transport, request: string | SubscribeInit, options: Parameters<typeof subscribe>[2] = {}) {
  const events: Event[] = [];
  const gaps: Gap[] = [];
  const retries: RetryInfo[] = [];
  let subscribedCount = 0;
  const abort = new AbortController();
  const init = typeof request === "string" ? { topic: request } : request;
  const stream = subscribe(transport, init, { retry: { initialDelayMs: 20, maxDelayMs: 200 }, ...options, signal: abort.signal, onRetry: (r) => retries.push(r) });
  const done = (async (): Promise<ConnectError | undefined> => {
    try {
      for await (const m of stream) {
        if (m.kind.case === "event") events.push(m.kind.value);
        else if (m.kind.case === "gap") gaps.push(m.kind.value);
        else if (m.kind.case === "subscribed") subscribedCount++;
      }
      return undefined;
    } catch (e) {
      return ConnectError.from(e);
    }
  })();
  return {
    events,
    gaps,
    retries,
    stream,
    done,
    subscribed: () => subscribedCount,
    texts: () => events.map((e) => new TextDecoder().decode(e.data)),
    /** Abort the subscription and wait for the reader: undefined, or the error it ended with. */
    stop: async () => {
      abort.abort();
      return done;
    },
  };
}
