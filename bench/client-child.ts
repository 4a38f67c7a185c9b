/**
 * A subscriber process: holds many Subscribe streams over a few HTTP/2
 * connections (one connect-node transport = one connection), counts what
 * arrives and, in latency mode, records publish-to-deliver latency from the
 * publish time the publisher put in the first 8 bytes of each payload.
 *
 * Commands (over IPC): subscribe, mark, collect, close, exit. While
 * subscriptions are open it reports progress (the smallest per-subscriber
 * event count, the publisher's flow-control signal) every 20 ms.
 */
import { createClient, type Client } from "@connectrpc/connect";
import { connect as natsConnect, type NatsConnection } from "@nats-io/transport-node";
import { transport, type BenchProtocol } from "./h2-transport.js";
import { rawSession, rawSubscribe } from "./raw-grpc-client.js";
import type { ClientHttp2Session } from "node:http2";
import { EventService } from "../gen/runnel/v1/event_pb.js";
import { emit, now, serveParent } from "./ipc.js";

type Mode = "count" | "latency" | "idle";

interface Sub {
  count: number;
  readonly abort: AbortController;
  done: Promise<void>;
}

interface SubscribeArgs {
  url: string;
  protocol: "grpc" | "connect" | "grpc-web" | "nats" | "grpc-raw";
  connections: number;
  count: number;
  topic: string;
  mode: Mode;
}

const clients = new Map<string, Client<typeof EventService>[]>();
let subs: Sub[] = [];
let total = 0;
let ended = 0;
let closings = 0;
const errors = new Map<string, number>();
let pubTimes: number[] = [];
let latencies: number[] = [];
let progressTimer: NodeJS.Timeout | undefined;
/** How often the slowest subscriber's count is reported (the publisher's flow-control feedback). */
const PROGRESS_MS = Number(process.env.BENCH_PROGRESS_MS ?? 5);


/** The clients (connections) for a server, made once and kept across subscribe/close rounds. */
function clientsFor(a: SubscribeArgs & { protocol: BenchProtocol }): Client<typeof EventService>[] {
  const key = `${a.protocol} ${a.url} ${a.connections}`;
  let list = clients.get(key);
  if (list === undefined) {
    list = Array.from({ length: a.connections }, () => createClient(EventService, transport(a.protocol, a.url)));
    clients.set(key, list);
  }
  return list;
}

function noteError(e: unknown): void {
  const key = e instanceof Error ? e.message.slice(0, 120) : String(e);
  errors.set(key, (errors.get(key) ?? 0) + 1);
}

function open(client: Client<typeof EventService>, topic: string, mode: Mode, onSubscribed: () => void): Sub {
  const sub: Sub = { count: 0, abort: new AbortController(), done: Promise.resolve() };
  sub.done = (async () => {
    let subscribed = false;
    try {
      for await (const m of client.subscribe({ topic }, { signal: sub.abort.signal })) {
        switch (m.kind.case) {
          case "event": {
            sub.count++;
            total++;
            if (mode === "latency") {
              const d = m.kind.value.data;
              const sent = Buffer.from(d.buffer, d.byteOffset, d.byteLength).readDoubleLE(0);
              pubTimes.push(sent);
              latencies.push(now() - sent);
            }
            break;
          }
          case "subscribed":
            subscribed = true;
            onSubscribed();
            break;
          case "closing":
            closings++;
            break;
          default:
            break;
        }
      }
    } catch (e) {
      if (!sub.abort.signal.aborted) noteError(e);
    } finally {
      if (!subscribed) onSubscribed(); // never hang the caller: the error is counted
      if (!sub.abort.signal.aborted) ended++;
    }
  })();
  return sub;
}

const natsConnections = new Map<string, NatsConnection[]>();

/** NATS core: one subscription per "stream", over `connections` connections; counted like the RPC streams. */
async function openNats(a: SubscribeArgs): Promise<void> {
  const key = `${a.url} ${a.connections}`;
  let list = natsConnections.get(key);
  if (list === undefined) {
    list = await Promise.all(Array.from({ length: a.connections }, () => natsConnect({ servers: a.url, maxPingOut: 10 })));
    natsConnections.set(key, list);
  }
  for (let i = 0; i < a.count; i++) {
    const sub: Sub = { count: 0, abort: new AbortController(), done: Promise.resolve() };
    const subscription = list[i % list.length]!.subscribe(a.topic, {
      callback: (err, msg) => {
        if (err !== null) return noteError(err);
        sub.count++;
        total++;
        if (a.mode === "latency") {
          const d = msg.data;
          const sent = Buffer.from(d.buffer, d.byteOffset, d.byteLength).readDoubleLE(0);
          pubTimes.push(sent);
          latencies.push(now() - sent);
        }
      },
    });
    sub.abort.signal.addEventListener("abort", () => subscription.unsubscribe(), { once: true });
    subs.push(sub);
  }
  // The server has every subscription once a round trip after them completes.
  await Promise.all(list.map((nc) => nc.flush()));
}

const rawSessions = new Map<string, ClientHttp2Session[]>();

/** gRPC over bare HTTP/2 streams (bench/raw-grpc-client.ts): counted like the connect-node subscriptions. */
async function openRaw(a: SubscribeArgs): Promise<void> {
  const key = `${a.url} ${a.connections}`;
  let list = rawSessions.get(key);
  if (list === undefined) {
    list = await Promise.all(Array.from({ length: a.connections }, () => rawSession(a.url)));
    rawSessions.set(key, list);
  }
  let pending = a.count;
  let resolveAll!: () => void;
  const all = new Promise<void>((r) => (resolveAll = r));
  if (pending === 0) resolveAll();
  for (let i = 0; i < a.count; i++) {
    let subscribed = false;
    let resolveDone!: () => void;
    const sub: Sub = { count: 0, abort: new AbortController(), done: new Promise<void>((r) => (resolveDone = r)) };
    const onSubscribed = (): void => {
      if (subscribed) return;
      subscribed = true;
      if (--pending === 0) resolveAll();
    };
    const cancel = rawSubscribe(list[i % list.length]!, a.topic, a.mode === "latency", {
      subscribed: onSubscribed,
      event(data) {
        sub.count++;
        total++;
        if (data !== undefined) {
          const sent = Buffer.from(data.buffer, data.byteOffset, data.byteLength).readDoubleLE(0);
          pubTimes.push(sent);
          latencies.push(now() - sent);
        }
      },
      closing: () => void closings++,
      ended(error) {
        if (error !== undefined) noteError(new Error(error));
        if (!sub.abort.signal.aborted) ended++;
        onSubscribed(); // never hang the caller: the error is counted
        resolveDone();
      },
    });
    sub.abort.signal.addEventListener("abort", cancel, { once: true });
    subs.push(sub);
  }
  await all;
}

function minCount(): number {
  let min = Number.POSITIVE_INFINITY;
  for (const s of subs) if (s.count < min) min = s.count;
  return subs.length === 0 ? 0 : min;
}

serveParent({
  async subscribe(raw) {
    const a = raw as unknown as SubscribeArgs;
    if (a.protocol === "nats" || a.protocol === "grpc-raw") {
      await (a.protocol === "nats" ? openNats(a) : openRaw(a));
      if (a.mode !== "idle" && progressTimer === undefined) {
        progressTimer = setInterval(() => emit("progress", { min: minCount(), total, ended }), PROGRESS_MS);
      }
      return { opened: a.count, errors: Object.fromEntries(errors) };
    }
    const list = clientsFor({ ...a, protocol: a.protocol });
    let pending = a.count;
    let resolveAll!: () => void;
    const all = new Promise<void>((r) => (resolveAll = r));
    const onSubscribed = (): void => {
      if (--pending === 0) resolveAll();
    };
    if (pending === 0) resolveAll();
    for (let i = 0; i < a.count; i++) subs.push(open(list[i % list.length]!, a.topic, a.mode, onSubscribed));
    await all;
    if (a.mode !== "idle" && progressTimer === undefined) {
      progressTimer = setInterval(() => emit("progress", { min: minCount(), total, ended }), PROGRESS_MS);
    }
    return { opened: a.count, errors: Object.fromEntries(errors) };
  },
  mark: () => ({ t: now(), cpu: process.cpuUsage(), total, min: minCount(), ended }),
  collect: () => {
    const out = {
      total,
      min: minCount(),
      ended,
      closings,
      errors: Object.fromEntries(errors),
      pubTimes: Float64Array.from(pubTimes),
      latencies: Float64Array.from(latencies),
    };
    pubTimes = [];
    latencies = [];
    return out;
  },
  async close() {
    clearInterval(progressTimer);
    progressTimer = undefined;
    const closing = subs;
    subs = [];
    for (const s of closing) s.abort.abort();
    await Promise.all(closing.map((s) => s.done));
    // NATS: the server has every UNSUB once a round trip after them completes.
    await Promise.all([...natsConnections.values()].flat().map((nc) => nc.flush()));
    return { closed: closing.length };
  },
  exit: () => {
    setImmediate(() => process.exit(0));
  },
});
emit("ready", { pid: process.pid });
