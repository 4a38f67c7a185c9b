/**
 * grpc.health.v1.Health: Check answers SERVING for the server and each
 * service it serves (NotFound for others); Watch is a server stream on the
 * lifecycle core, so it ends every way a Subscribe ends and leaves nothing
 * behind, repeats its status as a heartbeat, and tells NOT_SERVING when
 * shutdown begins.
 */
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DEFAULTS } from "../../src/config.js";
import type { RunnelServer } from "../../src/server.js";
import { createHealthService, HEALTH_WATCH_RPC } from "../../src/services/health-service.js";
import { Ledger } from "../../src/stream/ledger.js";
import { Health, HealthCheckRequestSchema, HealthCheckResponse_ServingStatus as Status, type HealthCheckResponse } from "../../gen/grpc/health/v1/health_pb.js";
import { create } from "@bufbuild/protobuf";
import { expectCleanEnd, snapshot } from "../harness/lifecycle.js";
import { startServer, waitFor } from "../harness/server.js";
import { TRANSPORTS } from "../harness/transports.js";

/** Watch in the background, recording statuses and the final error. */
function watch(transport: Parameters<typeof createClient>[1], service = "", timeoutMs?: number) {
  const statuses: Status[] = [];
  const abort = new AbortController();
  let error: ConnectError | undefined;
  let ended = false;
  const done = (async () => {
    try {
      for await (const m of createClient(Health, transport).watch({ service }, { signal: abort.signal, ...(timeoutMs === undefined ? {} : { timeoutMs }) })) statuses.push((m as HealthCheckResponse).status);
    } catch (e) {
      error = ConnectError.from(e);
    } finally {
      ended = true;
    }
  })();
  return { statuses, abort, done, error: () => error, ended: () => ended };
}

describe("health", () => {
  let server: RunnelServer;
  beforeAll(async () => {
    server = await startServer({ heartbeatMs: 60_000 });
  });
  afterAll(() => server.shutdown(1_000));

  for (const t of TRANSPORTS) {
    it(`${t.name}: Check is SERVING for the server and its services, NotFound otherwise`, async () => {
      const health = createClient(Health, t.create(server.url));
      for (const service of ["", "runnel.v1.EventService", "runnel.v1.AdminService", "grpc.health.v1.Health", "grpc.reflection.v1.ServerReflection"]) {
        expect((await health.check({ service })).status, service).toBe(Status.SERVING);
      }
      const error = await health.check({ service: "no.such.Service" }).catch((e: unknown) => ConnectError.from(e));
      expect((error as ConnectError).code).toBe(Code.NotFound);
    });

    it(`${t.name}: Watch sends the status first, is in the ledger, and its cancel leaves nothing behind`, async () => {
      const before = snapshot(server, HEALTH_WATCH_RPC);
      const w = watch(t.create(server.url));
      await waitFor(() => w.statuses.length === 1, 10_000, "first status");
      expect(w.statuses).toEqual([Status.SERVING]);
      expect(server.ledger.list().map((e) => e.rpc)).toEqual([HEALTH_WATCH_RPC]);
      w.abort.abort();
      await w.done;
      expect(w.error()?.code).toBe(Code.Canceled);
      await expectCleanEnd(server, before, { cause: t.http2 ? "canceled" : "disconnect", rpc: HEALTH_WATCH_RPC });
    });
  }

  it("Watch of an unknown service says SERVICE_UNKNOWN and stays open; admin close ends it cleanly", async () => {
    const before = snapshot(server, HEALTH_WATCH_RPC);
    const w = watch(createConnectTransport({ baseUrl: server.url, httpVersion: "2" }), "no.such.Service");
    await waitFor(() => w.statuses.length === 1, 10_000, "first status");
    expect(w.statuses).toEqual([Status.SERVICE_UNKNOWN]);
    expect(w.ended()).toBe(false);
    server.ledger.list()[0]!.close("admin", "closed by an operator");
    await w.done;
    expect(w.error()?.code).toBe(Code.Unavailable);
    await expectCleanEnd(server, before, { cause: "admin", rpc: HEALTH_WATCH_RPC });
  });

  for (const t of TRANSPORTS.filter((x) => x.name === "grpc h2" || x.name === "connect http/1.1")) {
    it(`${t.name}: a Watch whose deadline passes ends with DeadlineExceeded (cause deadline)`, async () => {
      const before = snapshot(server, HEALTH_WATCH_RPC);
      const w = watch(t.create(server.url), "", 300);
      await w.done;
      expect(w.statuses).toEqual([Status.SERVING]);
      expect(w.error()?.code).toBe(Code.DeadlineExceeded);
      await expectCleanEnd(server, before, { cause: "deadline", rpc: HEALTH_WATCH_RPC });
    });
  }

  it("Watch repeats its status as its heartbeat", async () => {
    const fast = await startServer({ heartbeatMs: 50, heartbeatMinMs: 10 });
    try {
      const w = watch(createConnectTransport({ baseUrl: fast.url, httpVersion: "2" }));
      await waitFor(() => w.statuses.length >= 3, 10_000, "heartbeats");
      expect(new Set(w.statuses)).toEqual(new Set([Status.SERVING]));
      w.abort.abort();
      await w.done;
      await waitFor(() => fast.ledger.size === 0, 5_000, "ledger empty");
    } finally {
      await fast.shutdown(1_000);
    }
  });

  it("shutdown: a watcher's last status is NOT_SERVING, then Unavailable", async () => {
    const doomed = await startServer({ heartbeatMs: 60_000 });
    const w = watch(createConnectTransport({ baseUrl: doomed.url, httpVersion: "2" }));
    await waitFor(() => w.statuses.length === 1, 10_000, "first status");
    await doomed.shutdown(2_000);
    await w.done;
    expect(w.statuses).toEqual([Status.SERVING, Status.NOT_SERVING]);
    expect(w.error()?.code).toBe(Code.Unavailable);
    expect(doomed.ledger.endedCount(HEALTH_WATCH_RPC, "shutdown")).toBe(1);
  });

  it("Check answers NOT_SERVING once shutdown began (the service reads the server's state)", async () => {
    let serving = true;
    const impl = createHealthService({ ledger: new Ledger(), config: DEFAULTS, services: ["runnel.v1.EventService"], serving: () => serving });
    const check = (service: string) => (impl.check as (r: unknown, c: unknown) => HealthCheckResponse)(create(HealthCheckRequestSchema, { service }), undefined);
    expect(check("").status).toBe(Status.SERVING);
    serving = false;
    expect(check("").status).toBe(Status.NOT_SERVING);
    expect(check("runnel.v1.EventService").status).toBe(Status.NOT_SERVING);
  });
});
