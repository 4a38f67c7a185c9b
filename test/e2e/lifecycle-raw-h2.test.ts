/**
 * Slow consumer at the HTTP/2 stream level: one stream stops being read
 * while its connection stays healthy (PINGs answered, other streams served).
 * Only the per-stream flow-control window backs up. The server must still
 * find the stream over its queue bound, end it with Closing(SLOW_CONSUMER) +
 * ResourceExhausted when the reader comes back in time, or cut just that
 * stream (RST_STREAM, not the session) when it never does.
 */
import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { randomBytes } from "node:crypto";
import type { ClientHttp2Session } from "node:http2";
import { constants as h2 } from "node:http2";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { ClosingReason, EventService } from "../../gen/runnel/v1/event_pb.js";
import type { RunnelServer } from "../../src/server.js";
import { expectCleanEnd, snapshot } from "../harness/lifecycle.js";
import { connectH2, rawSubscribe } from "../harness/raw-grpc.js";
import { startServer, waitFor } from "../harness/server.js";

const GRPC_RESOURCE_EXHAUSTED = 8;
const BIG = new Uint8Array(randomBytes(64 * 1024)); // random: incompressible

async function publishUntil(server: RunnelServer, topic: string, ended: () => boolean): Promise<void> {
  const pub = createClient(EventService, createConnectTransport({ baseUrl: server.url, httpVersion: "2" }));
  for (let n = 0; !ended(); n++) {
    if (n >= 2_000) throw new Error("stream still not ended after 2000 events");
    await pub.publish({ topic, data: BIG });
  }
}

for (const variant of ["resumes later", "never reads"] as const) {
  describe(`raw gRPC h2 stream that stops reading, ${variant}`, () => {
    let server: RunnelServer;
    let session: ClientHttp2Session;
    beforeAll(async () => {
      server = await startServer({
        maxQueueEvents: 50,
        closeFlushMs: variant === "never reads" ? 200 : 30_000,
        // Keepalive is on and the session answers it: the stream, not the peer, is the problem.
        pingIntervalMs: 100,
        pingTimeoutMs: 2_000,
        retentionBytes: 16 * 1024 * 1024,
      });
    });
    afterEach(() => session?.destroy());
    afterAll(() => server.shutdown(1_000));

    it(`ends with cause slow_consumer${variant === "resumes later" ? " and the reader gets Closing + ResourceExhausted" : "; only the stream is reset, the session lives on"}`, async () => {
      session = await connectH2(server.url);
      const before = snapshot(server);
      const topic = `raw.${variant.replace(" ", "_")}`;
      const sub = rawSubscribe(session, { topic });
      await sub.subscribed;
      sub.pause();
      await publishUntil(server, topic, () => server.bus.stats().subscriptionsActive === 0);
      if (variant === "resumes later") {
        sub.resume();
        const end = await sub.closed;
        expect(end.grpcStatus).toBe(GRPC_RESOURCE_EXHAUSTED);
        const last = sub.messages.at(-1);
        expect(last?.kind.case).toBe("closing");
        if (last?.kind.case !== "closing") return;
        expect(last.kind.value.reason).toBe(ClosingReason.SLOW_CONSUMER);
        const events = sub.messages.flatMap((m) => (m.kind.case === "event" ? [m.kind.value] : []));
        expect(events.length).toBeGreaterThan(0);
        expect(last.kind.value.resumeCursor).toBe(events.at(-1)!.cursor);
        await expectCleanEnd(server, before, { cause: "slow_consumer" });
      } else {
        await expectCleanEnd(server, before, { cause: "slow_consumer" });
        const end = await sub.closed;
        expect(end.rstCode).toBe(h2.NGHTTP2_CANCEL);
        expect(sub.messages.some((m) => m.kind.case === "closing")).toBe(false);
        // The session was not condemned: keepalive found nothing wrong and a new stream works.
        expect(session.destroyed).toBe(false);
        const before2 = snapshot(server);
        const again = rawSubscribe(session, { topic: `${topic}.again` });
        await again.subscribed;
        again.stream.close(h2.NGHTTP2_CANCEL);
        await expectCleanEnd(server, before2, { cause: "canceled" });
      }
      await waitFor(() => server.ledger.size === 0, 5_000, "ledger empty");
    });
  });
}
