/**
 * The end-cause matrix for Subscribe: every way a Subscribe stream can end,
 * over every transport runnel serves (the rows are in
 * test/harness/end-cause-matrix.ts; tail-end-cause-matrix.test.ts runs the
 * same rows for Tail). Items are bus events; the source is the stream's bus
 * subscription.
 */
import { Code, createClient, type Client, type Transport } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { randomBytes } from "node:crypto";
import { EventService } from "../../gen/runnel/v1/event_pb.js";
import type { RunnelServer } from "../../src/server.js";
import { endCauseMatrix, type MatrixStream } from "../harness/end-cause-matrix.js";
import { createFailingBus, type FailingBus } from "../harness/failing-bus.js";
import { subscribe, SUBSCRIBE, type Subscriber } from "../harness/lifecycle.js";
import { waitFor } from "../harness/server.js";

type EventClient = Client<typeof EventService>;

const encoder = new TextEncoder();

/**
 * A payload that fills socket buffers quickly. Random, because connect-es
 * compresses messages (gzip) when the client accepts it: 64 KiB of one byte
 * value goes over the wire as ~100 bytes and would never back anything up.
 */
const BIG = new Uint8Array(randomBytes(64 * 1024));

const publishers = new WeakMap<RunnelServer, EventClient>();

/** A publisher that talks to the server directly (never through a relay under test). */
function publisherFor(server: RunnelServer): EventClient {
  let pub = publishers.get(server);
  if (pub === undefined) {
    pub = createClient(EventService, createConnectTransport({ baseUrl: server.url, httpVersion: "2" }));
    publishers.set(server, pub);
  }
  return pub;
}

/** The matrix's view of a subscriber. */
function asStream(sub: Subscriber): MatrixStream & { sub: Subscriber } {
  return {
    sub,
    opened: sub.subscribed,
    done: sub.done,
    abort: sub.abort,
    lastCursor: () => sub.events().at(-1)?.cursor,
    closing: () => sub.closing(),
    lastCase: () => sub.messages.at(-1)?.kind.case,
  };
}

function open(transport: Transport, topic: string, options: { timeoutMs?: number } = {}): MatrixStream & { sub: Subscriber } {
  return asStream(subscribe(createClient(EventService, transport), { topic }, options));
}

endCauseMatrix({
  rpc: SUBSCRIBE,
  items: "events",
  open,
  async produce(server, stream, topic, n) {
    const sub = (stream as ReturnType<typeof open>).sub;
    const had = sub.events().length;
    const pub = publisherFor(server);
    for (let i = 0; i < n; i++) await pub.publish({ topic, data: encoder.encode(`m${i}`) });
    await waitFor(() => sub.events().length >= had + n, 10_000, `${n} events received`);
  },
  async produceBig(server, topic) {
    await publisherFor(server).publish({ topic, data: BIG });
  },
  sourceReleased: (server) => server.bus.stats().subscriptionsActive === 0,
  async warm(_server, transport, topic) {
    await createClient(EventService, transport).publish({ topic, data: encoder.encode("warm") });
  },
  childArgs: (url, t, topic) => [new URL("../../dist/test/fixtures/subscribe-child.js", import.meta.url).pathname, url, t.name, topic],
  failure: {
    title: "the bus fails the subscription (handler error)",
    code: Code.Unavailable,
    parts: () => ({ bus: createFailingBus() }),
    async run(server, transport, topic) {
      const stream = open(transport, topic);
      await stream.opened;
      const pub = publisherFor(server);
      for (let i = 0; i < 2; i++) await pub.publish({ topic, data: encoder.encode(`m${i}`) });
      await waitFor(() => stream.sub.events().length >= 2, 10_000, "2 events received");
      // DeliverySink.fail(unavailable) mid-stream.
      if ((server.bus as FailingBus).failSubscriptions(topic) !== 1) throw new Error("the failing bus had no subscription to fail");
      return stream;
    },
  },
});
