/**
 * The baseline: runnel.v1.EventService written the way a connect-es user
 * writes it the first time, with nothing of runnel's stream core. It is a
 * fair, working implementation of live Subscribe + Publish (no sleeps, no
 * artificial costs), so the benchmark compares designs, not a strawman:
 *
 * - Publish appends to an in-memory per-topic array (unbounded) and pushes the
 *   event, built once, into every subscriber's own queue (unbounded).
 * - Subscribe sends Subscribed first (the contract requires it, and a client
 *   gets no response headers until the first message), then loops: one
 *   `await` per event, one `yield` per event; when the queue is empty it
 *   waits with a Promise.race against a promise that rejects on abort.
 * - Cleanup lives in `finally`.
 *
 * Only exact topics are matched (no patterns, no replay, no heartbeats, no
 * bounds): the benchmark uses live subscriptions to one exact topic.
 *
 * It is served by connectNodeAdapter on http2.createServer (h2c), plus
 * http.createServer on a second port for the HTTP/1.1 transports.
 */
import { create } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { ConnectError, Code, type HandlerContext, type ServiceImpl } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import http from "node:http";
import http2 from "node:http2";
import type { AddressInfo } from "node:net";
import {
  EventService,
  PublishResponseSchema,
  SubscribeResponseSchema,
  type PublishRequest,
  type SubscribeRequest,
  type SubscribeResponse,
} from "../../gen/runnel/v1/event_pb.js";

/** Hooks the benchmark uses to observe the baseline. */
export interface NaiveHooks {
  /**
   * Called from the Subscribe handler's `finally`, i.e. when its cleanup
   * runs, with the performance.now() time at which the handler saw
   * `ctx.signal` abort (undefined when it ended otherwise).
   */
  onRelease?: (abortSeenAt: number | undefined) => void;
}

/** An unbounded async queue, one per subscriber. */
class AsyncQueue<T> {
  private readonly items: T[] = [];
  private waiter: ((item: T) => void) | undefined;

  push(item: T): void {
    const w = this.waiter;
    if (w !== undefined) {
      this.waiter = undefined;
      w(item);
    } else {
      this.items.push(item);
    }
  }

  /** The next item: at once when one is queued, else when one is pushed. */
  next(): Promise<T> {
    if (this.items.length > 0) return Promise.resolve(this.items.shift()!);
    return new Promise((resolve) => {
      this.waiter = resolve;
    });
  }
}

interface Topic {
  seq: bigint;
  readonly events: SubscribeResponse[];
  readonly subscribers: Set<AsyncQueue<SubscribeResponse>>;
}

/** The naive EventService implementation (Publish and Subscribe; PublishBatch answers Unimplemented). */
export function createNaiveEventService(hooks: NaiveHooks = {}): {
  service: Partial<ServiceImpl<typeof EventService>>;
  activeStreams: () => number;
} {
  const topics = new Map<string, Topic>();
  let active = 0;
  let ids = 0;

  function topicOf(name: string): Topic {
    let t = topics.get(name);
    if (t === undefined) {
      t = { seq: 0n, events: [], subscribers: new Set() };
      topics.set(name, t);
    }
    return t;
  }

  const service: Partial<ServiceImpl<typeof EventService>> = {
    publish(req: PublishRequest) {
      if (req.topic === "") throw new ConnectError("topic is required", Code.InvalidArgument);
      const t = topicOf(req.topic);
      const seq = ++t.seq;
      const cursor = `${req.topic}:${seq}`;
      const time = timestampFromMs(Date.now());
      const event = create(SubscribeResponseSchema, {
        kind: { case: "event", value: { topic: req.topic, seq, cursor, data: req.data, headers: req.headers, time } },
      });
      t.events.push(event);
      for (const queue of t.subscribers) queue.push(event);
      return create(PublishResponseSchema, { seq, cursor, time });
    },

    async *subscribe(req: SubscribeRequest, ctx: HandlerContext) {
      const t = topicOf(req.topic);
      const queue = new AsyncQueue<SubscribeResponse>();
      t.subscribers.add(queue);
      active++;
      let abortSeenAt: number | undefined;
      const aborted = new Promise<never>((_, reject) => {
        if (ctx.signal.aborted) reject(ctx.signal.reason);
        ctx.signal.addEventListener(
          "abort",
          () => {
            abortSeenAt = performance.now();
            reject(ctx.signal.reason);
          },
          { once: true },
        );
      });
      aborted.catch(() => undefined);
      try {
        yield create(SubscribeResponseSchema, {
          kind: { case: "subscribed", value: { subscriptionId: String(++ids), heartbeatMs: 0, headCursor: `${req.topic}:${t.seq}` } },
        });
        for (;;) {
          const event = await Promise.race([queue.next(), aborted]);
          yield event;
        }
      } finally {
        t.subscribers.delete(queue);
        active--;
        hooks.onRelease?.(abortSeenAt);
      }
    },
  };
  return { service, activeStreams: () => active };
}

/** A running baseline server. */
export interface NaiveServer {
  /** h2c (prior knowledge) base URL. */
  readonly h2Url: string;
  /** HTTP/1.1 base URL (a second port). */
  readonly h1Url: string;
  activeStreams(): number;
  close(): void;
}

/** Start the baseline on 127.0.0.1, on two free ports (h2c and HTTP/1.1). */
export async function startNaiveServer(hooks: NaiveHooks = {}): Promise<NaiveServer> {
  const { service, activeStreams } = createNaiveEventService(hooks);
  const handler = connectNodeAdapter({ routes: (router) => router.service(EventService, service) });
  const h2 = http2.createServer(handler);
  const h1 = http.createServer(handler);
  const listen = (server: http.Server | http2.Http2Server): Promise<string> =>
    new Promise((resolve, reject) => {
      server.once("error", reject);
      server.listen(0, "127.0.0.1", () => {
        const a = server.address() as AddressInfo;
        resolve(`http://127.0.0.1:${a.port}`);
      });
    });
  const h2Url = await listen(h2);
  const h1Url = await listen(h1);
  return {
    h2Url,
    h1Url,
    activeStreams,
    close() {
      h2.close();
      h1.close();
      h1.closeAllConnections();
    },
  };
}
