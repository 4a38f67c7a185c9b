/**
 * 2,000 open-and-cancel cycles over every transport leave nothing behind:
 * ledger and bus subscriptions at zero, every stream counted as ended exactly
 * once, fds back to the baseline, heap back within a small slack.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { END_CAUSES } from "../../src/stream/end-cause.js";
import type { RunnelServer } from "../../src/server.js";
import { openFdCount } from "../harness/procfs.js";
import { startServer, waitFor } from "../harness/server.js";
import { gcFunction, ownedTransports, runCycles, settledHeap, type OwnedTransport } from "../stress/cycle-runner.js";
import { heldResources } from "../../src/stream/scope.js";

const SUBSCRIBE = "runnel.v1.EventService/Subscribe";
const CYCLES = 2_000;
const CONCURRENCY = 20;
const HEAP_SLACK = 4 * 1024 * 1024;
const FD_SLACK = 4;

describe(`${CYCLES} open-and-cancel cycles`, () => {
  let server: RunnelServer;
  let transports: OwnedTransport[];
  beforeAll(async () => {
    server = await startServer({ heartbeatMs: 60_000 });
  });
  afterAll(async () => {
    for (const t of transports ?? []) t.close();
    await server.shutdown(1_000);
  });

  it("leave no stream, subscription, fd or heap behind", async () => {
    const gc = gcFunction();
    const ended = (): number => END_CAUSES.reduce((n, c) => n + server.ledger.endedCount(SUBSCRIBE, c), 0);
    const fdsBeforeClients = openFdCount();
    transports = ownedTransports(server.url);

    // Warm up: pooled connections open, code paths compiled, lazy singletons created.
    await runCycles(transports, 200, CONCURRENCY, "warm");
    await waitFor(() => server.ledger.size === 0, 10_000, "ledger empty after warm-up");
    const fdsBaseline = openFdCount();
    const heapBaseline = await settledHeap(gc);
    const endedBefore = ended();
    const finallyBefore = server.ledger.finallyRan;

    const stats = await runCycles(transports, CYCLES, CONCURRENCY);
    expect(stats.subscribed + stats.immediate).toBe(CYCLES);

    await waitFor(() => server.ledger.size === 0, 10_000, "ledger empty");
    expect(server.bus.stats().subscriptionsActive).toBe(0);
    expect(heldResources().size).toBe(0);
    // Every stream the server saw ended exactly once and ran its body's finally (or never started).
    const endedNow = ended() - endedBefore;
    expect(endedNow).toBeGreaterThanOrEqual(stats.subscribed);
    expect(endedNow).toBeLessThanOrEqual(CYCLES);
    expect(server.ledger.finallyRan - finallyBefore).toBe(endedNow);
    expect(server.ledger.endedCount(SUBSCRIBE, "error")).toBe(0);

    await waitFor(() => openFdCount() <= fdsBaseline + FD_SLACK, 10_000, `fds back to ${fdsBaseline} (+${FD_SLACK}), now ${openFdCount()}`);
    const heapAfter = await settledHeap(gc);
    expect({ heapGrowthMiB: Math.max(0, heapAfter - heapBaseline) / 1024 / 1024, under: heapAfter - heapBaseline < HEAP_SLACK }).toMatchObject({ under: true });

    // Closing the clients' pools returns every fd they and the server held for them.
    for (const t of transports) t.close();
    await waitFor(() => server.connections.socketCount === 0, 10_000, "server sockets closed");
    await waitFor(() => openFdCount() <= fdsBeforeClients + FD_SLACK, 10_000, `fds back to ${fdsBeforeClients} (+${FD_SLACK}), now ${openFdCount()}`);
  });
});
