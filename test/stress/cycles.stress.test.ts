/**
 * The stress version of test/e2e/cycles.test.ts: 20,000 open-and-cancel
 * cycles over every transport. Run with `npm run test:stress`
 * (RUNNEL_STRESS=1 vitest run test/stress); the default run excludes it.
 *
 * The cycles run in batches of 2,000, each on fresh connections: nghttp2
 * (Node 20's HTTP/2) ends a session with GOAWAY(INTERNAL_ERROR) once its peer
 * has reset about 1,000 streams faster than 33 a second (the "rapid reset"
 * guard), so one connection cannot carry 20,000 quick cancels. Opening and
 * closing the connections is part of what must leave nothing behind.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { END_CAUSES } from "../../src/stream/end-cause.js";
import type { RunnelServer } from "../../src/server.js";
import { openFdCount } from "../harness/procfs.js";
import { startServer, waitFor } from "../harness/server.js";
import { gcFunction, ownedTransports, runCycles, settledHeap, type OwnedTransport } from "./cycle-runner.js";
import { heldResources } from "../../src/stream/scope.js";

const SUBSCRIBE = "runnel.v1.EventService/Subscribe";
const CYCLES = 20_000;
const CONCURRENCY = 50;
const BATCH = 2_000;
// Not ten times the e2e slack: a leak grows with cycles, V8's own caches do not.
const HEAP_SLACK = 8 * 1024 * 1024;
const FD_SLACK = 4;

describe(`${CYCLES} open-and-cancel cycles (stress)`, () => {
  let server: RunnelServer;
  let transports: OwnedTransport[] = [];
  beforeAll(async () => {
    server = await startServer({ heartbeatMs: 60_000 });
  });
  afterAll(async () => {
    for (const t of transports) t.close();
    await server.shutdown(1_000);
  });

  it("leave no stream, subscription, fd or heap behind", { timeout: 600_000 }, async () => {
    const gc = gcFunction();
    const ended = (): number => END_CAUSES.reduce((n, c) => n + server.ledger.endedCount(SUBSCRIBE, c), 0);
    const fdsBeforeClients = openFdCount();
    const batch = async (cycles: number, prefix: string) => {
      transports = ownedTransports(server.url);
      const stats = await runCycles(transports, cycles, CONCURRENCY, prefix);
      for (const t of transports) t.close();
      transports = [];
      return stats;
    };

    await batch(1_000, "warm");
    await waitFor(() => server.ledger.size === 0, 10_000, "ledger empty after warm-up");
    await waitFor(() => server.connections.socketCount === 0, 10_000, "server sockets closed after warm-up");
    const heapBaseline = await settledHeap(gc);
    const endedBefore = ended();
    const finallyBefore = server.ledger.finallyRan;

    let subscribed = 0;
    let early = 0;
    for (let done = 0; done < CYCLES; done += BATCH) {
      const stats = await batch(BATCH, `cycle${done}`);
      subscribed += stats.subscribed;
      early += stats.immediate;
    }
    expect(subscribed + early).toBe(CYCLES);

    await waitFor(() => server.ledger.size === 0, 30_000, "ledger empty");
    expect(server.bus.stats().subscriptionsActive).toBe(0);
    expect(heldResources().size).toBe(0);
    const endedNow = ended() - endedBefore;
    expect(endedNow).toBeGreaterThanOrEqual(subscribed);
    expect(endedNow).toBeLessThanOrEqual(CYCLES);
    expect(server.ledger.finallyRan - finallyBefore).toBe(endedNow);
    expect(server.ledger.endedCount(SUBSCRIBE, "error")).toBe(0);

    await waitFor(() => server.connections.socketCount === 0, 10_000, "server sockets closed");
    await waitFor(() => openFdCount() <= fdsBeforeClients + FD_SLACK, 30_000, `fds back to ${fdsBeforeClients} (+${FD_SLACK}), now ${openFdCount()}`);
    const heapAfter = await settledHeap(gc);
    const growth = heapAfter - heapBaseline;
    console.log(`stress: ${CYCLES} cycles, heap growth ${(growth / 1024 / 1024).toFixed(2)} MiB, ended ${endedNow}, fds ${openFdCount()} (before clients ${fdsBeforeClients})`);
    expect(growth).toBeLessThan(HEAP_SLACK);
  });
});
