/**
 * Open-and-cancel cycles against a real server, shared by the e2e cycles test
 * (2,000 cycles) and the stress test (20,000): each cycle opens a Subscribe
 * over one of the five transports and cancels it, either once Subscribed
 * arrived or at once (before the server may even have seen it). Afterwards
 * the server must hold nothing: no ledger entry, no bus subscription, no fd,
 * no heap beyond a small slack.
 *
 * The transports own their connections explicitly (an Http2SessionManager per
 * HTTP/2 transport, a keep-alive Agent per HTTP/1.1 transport) so the test can
 * close them and count fds back to where they started.
 */
import { Code, ConnectError, createClient, type Client, type Transport } from "@connectrpc/connect";
import { Http2SessionManager, createConnectTransport, createGrpcTransport, createGrpcWebTransport } from "@connectrpc/connect-node";
import http from "node:http";
import v8 from "node:v8";
import vm from "node:vm";
import { EventService } from "../../gen/runnel/v1/event_pb.js";

/** A transport and the connections it pools, so they can be closed. */
export interface OwnedTransport {
  readonly name: string;
  readonly client: Client<typeof EventService>;
  close(): void;
}

/** The five transports, each with its own connection pool. */
export function ownedTransports(baseUrl: string): OwnedTransport[] {
  const h2 = (name: string, make: (sessionManager: Http2SessionManager) => Transport): OwnedTransport => {
    const sessionManager = new Http2SessionManager(baseUrl);
    return { name, client: createClient(EventService, make(sessionManager)), close: () => sessionManager.abort() };
  };
  const h1 = (name: string, make: (agent: http.Agent) => Transport): OwnedTransport => {
    const agent = new http.Agent({ keepAlive: true });
    return { name, client: createClient(EventService, make(agent)), close: () => agent.destroy() };
  };
  return [
    h1("connect http/1.1", (agent) => createConnectTransport({ baseUrl, httpVersion: "1.1", nodeOptions: { agent } })),
    h2("connect h2", (sessionManager) => createConnectTransport({ baseUrl, httpVersion: "2", sessionManager })),
    h2("grpc h2", (sessionManager) => createGrpcTransport({ baseUrl, sessionManager })),
    h1("grpc-web http/1.1", (agent) => createGrpcWebTransport({ baseUrl, httpVersion: "1.1", nodeOptions: { agent } })),
    h2("grpc-web h2", (sessionManager) => createGrpcWebTransport({ baseUrl, httpVersion: "2", sessionManager })),
  ];
}

/** What a run did, for the test's assertions. */
export interface CycleStats {
  /** Cycles that saw Subscribed before cancelling. */
  subscribed: number;
  /** Cycles cancelled early, without waiting for Subscribed. */
  immediate: number;
}

/**
 * One cycle: open, then either wait for Subscribed or wait `earlyMs` (0: not at
 * all), cancel, and check the client sees Canceled.
 */
async function cycle(client: Client<typeof EventService>, topic: string, waitForSubscribed: boolean, earlyMs: number): Promise<void> {
  const abort = new AbortController();
  const it = client.subscribe({ topic }, { signal: abort.signal })[Symbol.asyncIterator]();
  if (waitForSubscribed) {
    const first = await it.next();
    if (first.value?.kind.case !== "subscribed") throw new Error(`first message was ${first.value?.kind.case}, not subscribed`);
  } else {
    // Start the call, then cancel at an early moment: before it is sent, in flight, or during setup on the server.
    const pending = it.next().catch(() => undefined);
    if (earlyMs > 0) await new Promise((r) => setTimeout(r, earlyMs));
    abort.abort();
    await pending;
    return expectCanceled(it);
  }
  abort.abort();
  return expectCanceled(it);
}

async function expectCanceled(it: AsyncIterator<unknown>): Promise<void> {
  try {
    const r = await it.next();
    // The iterator may also simply finish after the abort; anything else is wrong.
    if (!r.done) throw new Error(`got ${JSON.stringify(r.value)} after cancel`);
  } catch (e) {
    const err = ConnectError.from(e);
    if (err.code !== Code.Canceled) throw new Error(`cancelled call ended with ${Code[err.code]}: ${err.message}`);
  }
}

/** Run `total` cycles, `concurrency` at a time, round robin over the transports. */
export async function runCycles(transports: readonly OwnedTransport[], total: number, concurrency: number, topicPrefix = "cycle"): Promise<CycleStats> {
  const stats: CycleStats = { subscribed: 0, immediate: 0 };
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < total) {
        const i = next++;
        const t = transports[i % transports.length]!;
        // Every fourth cycle cancels early (at once, or after 1-2 ms); the others once the server confirmed the subscription.
        const waitForSubscribed = i % 4 !== 3;
        await cycle(t.client, `${topicPrefix}.${i % 7 === 0 ? "*" : `t${i % 10}`}`, waitForSubscribed, (i >> 2) % 3);
        if (waitForSubscribed) stats.subscribed++;
        else stats.immediate++;
      }
    }),
  );
  return stats;
}

/** A function that runs a full garbage collection: global.gc when node runs with --expose-gc, else enabled at runtime. */
export function gcFunction(): () => void {
  const g = (globalThis as { gc?: () => void }).gc;
  if (typeof g === "function") return g;
  v8.setFlagsFromString("--expose-gc");
  return vm.runInNewContext("gc") as () => void;
}

/** Heap used after collecting garbage until it settles. */
export async function settledHeap(gc: () => void): Promise<number> {
  let last = Number.POSITIVE_INFINITY;
  for (let i = 0; i < 10; i++) {
    await new Promise((r) => setImmediate(r));
    gc();
    const used = process.memoryUsage().heapUsed;
    if (Math.abs(last - used) < 64 * 1024) return used;
    last = used;
  }
  return last;
}
