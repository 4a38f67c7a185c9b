/**
 * The resumable client ends the server stream whenever its caller stops
 * reading: `break`, `return`, an exception in the loop body, or the caller's
 * AbortSignal. connect-es alone does not (the first test shows it), so each
 * of these is checked over every transport against a real server: the
 * stream leaves the ledger with its client-abort cause and nothing is held.
 */
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { subscribe } from "../../src/index.js"; // the package entry
import { EventService, type SubscribeResponse } from "../../gen/runnel/v1/event_pb.js";
import type { RunnelServer } from "../../src/server.js";
import type { EndCause } from "../../src/stream/end-cause.js";
import { causesSince, expectCleanEnd, snapshot, token } from "../harness/lifecycle.js";
import { startServer, waitFor } from "../harness/server.js";
import { TRANSPORTS, type TransportCase } from "../harness/transports.js";

const enc = (s: string): Uint8Array => new TextEncoder().encode(s);

/** What a client-side abort looks like to the server: HTTP/2 has RST_STREAM(CANCEL), HTTP/1.1 only a closed socket. */
const abortCause = (t: TransportCase): EndCause => (t.http2 ? "canceled" : "disconnect");

describe("the resumable client cancels the server stream when its reader leaves", () => {
  let server: RunnelServer;
  const publish = (topic: string, text: string) =>
    createClient(EventService, createConnectTransport({ baseUrl: server.url, httpVersion: "2" })).publish({ topic, data: enc(text) });

  beforeAll(async () => {
    server = await startServer({ heartbeatMs: 60_000 });
  });
  afterAll(() => server.shutdown(1_000));

  it("connect-es alone does not: after `break` the server stream stays open until the signal aborts", async () => {
    const client = createClient(EventService, createConnectTransport({ baseUrl: server.url, httpVersion: "2" }));
    const abort = new AbortController();
    for await (const m of client.subscribe({ topic: "raw.break" }, { signal: abort.signal })) {
      if (m.kind.case === "subscribed") break;
    }
    await new Promise((r) => setTimeout(r, 300));
    expect(server.ledger.size).toBe(1);
    abort.abort();
    await waitFor(() => server.ledger.size === 0, 5_000, "stream released after abort");
  });

  for (const t of TRANSPORTS) {
    it(`${t.name}: break after an event ends the server stream (${abortCause(t)})`, async () => {
      const before = snapshot(server);
      const topic = `brk.${token(t.name)}`;
      const seen: string[] = [];
      for await (const m of subscribe(t.create(server.url), { topic })) {
        if (m.kind.case === "subscribed") void publish(topic, "one");
        if (m.kind.case === "event") {
          seen.push(new TextDecoder().decode(m.kind.value.data));
          break;
        }
      }
      expect(seen).toEqual(["one"]);
      await expectCleanEnd(server, before, { cause: abortCause(t) });
    });

    it(`${t.name}: return from the loop and an exception in its body end it too`, async () => {
      const before = snapshot(server);
      const topic = `ret.${token(t.name)}`;
      const firstKind = async (): Promise<string | undefined> => {
        for await (const m of subscribe(t.create(server.url), { topic })) return m.kind.case;
        return undefined;
      };
      expect(await firstKind()).toBe("subscribed");
      const thrown = await (async () => {
        for await (const m of subscribe(t.create(server.url), { topic })) {
          if (m.kind.case === "subscribed") throw new Error("reader failed");
        }
      })().catch((e: unknown) => e);
      expect((thrown as Error).message).toBe("reader failed");
      await expectCleanEnd(server, before, { cause: abortCause(t), opened: 2 });
    });

    it(`${t.name}: the caller's AbortSignal ends it with Canceled`, async () => {
      const before = snapshot(server);
      const abort = new AbortController();
      const kinds: (string | undefined)[] = [];
      const error = await (async () => {
        for await (const m of subscribe(t.create(server.url), { topic: `sig.${token(t.name)}` }, { signal: abort.signal })) {
          kinds.push(m.kind.case);
          if (m.kind.case === "subscribed") setTimeout(() => abort.abort(), 10);
        }
      })().catch((e: unknown) => ConnectError.from(e));
      expect(kinds).toEqual(["subscribed"]);
      expect(error?.code).toBe(Code.Canceled);
      await expectCleanEnd(server, before, { cause: abortCause(t) });
    });
  }

  it("a signal aborted before the first read opens no stream at all", async () => {
    const before = snapshot(server);
    const stream = subscribe(createConnectTransport({ baseUrl: server.url, httpVersion: "2" }), { topic: "pre.aborted" }, { signal: AbortSignal.abort() });
    const error = await stream.next().catch((e: unknown) => ConnectError.from(e));
    expect((error as ConnectError).code).toBe(Code.Canceled);
    await new Promise((r) => setTimeout(r, 100));
    expect(causesSince(server, before)).toEqual({});
    expect(server.ledger.size).toBe(0);
  });

  it("close() while a read is pending ends the read and the server stream", async () => {
    const before = snapshot(server);
    const stream = subscribe(createConnectTransport({ baseUrl: server.url, httpVersion: "2" }), { topic: "close.pending" });
    const first = await stream.next();
    expect((first.value as SubscribeResponse).kind.case).toBe("subscribed");
    const pending = stream.next().catch((e: unknown) => ConnectError.from(e));
    await waitFor(() => server.ledger.size === 1, 5_000, "stream live");
    const done = stream.return();
    expect(((await pending) as ConnectError).code).toBe(Code.Canceled);
    expect(await done).toEqual({ done: true, value: undefined });
    await expectCleanEnd(server, before, { cause: "canceled" });
  });
});
