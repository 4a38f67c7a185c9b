/**
 * The publisher, in its own process (fresh for every run, so neither server
 * gets a publisher whose code the other run already warmed up).
 *
 * Two ways to publish 100-byte events to one topic over one HTTP/2 connection:
 * - flow: as fast as the subscribers take them. At most `window` events
 *   published and not yet received by every subscriber (the orchestrator
 *   relays the slowest subscriber's count with `slowest`), and at most
 *   `concurrency` Publish calls in flight. With window < runnel's per-stream
 *   bound (1,000 events), no queue on either server grows past the window.
 * - paced: `rate` publishes per second for `durationMs`; the first 8 bytes of
 *   every payload hold the shared-clock time taken just before the call.
 * - throughput: as fast as the server answers, no subscribers in mind: at most
 *   `concurrency` calls in flight, each one Publish of one event or one
 *   PublishBatch of `batch` events, topics taken round robin from `topics`.
 *
 * published, acked and failures count events (one per Publish call, `batch`
 * per PublishBatch call).
 */
import { createClient } from "@connectrpc/connect";
import { connect as natsConnect, type NatsConnection } from "@nats-io/transport-node";
import { transport } from "./h2-transport.js";
import { EventService } from "../gen/runnel/v1/event_pb.js";
import { emit, now, serveParent, sleep } from "./ipc.js";

interface Common {
  url: string;
  protocol: "grpc" | "connect" | "grpc-web" | "nats";
  topic: string;
  bytes: number;
}


/** One event of a PublishBatch call. */
interface BatchEvent {
  readonly topic: string;
  readonly data: Uint8Array;
}

/** Something that publishes and answers when the server has the event. */
interface Publisher {
  publish(topic: string, data: Uint8Array): Promise<unknown>;
  /** Several events in one call (PublishBatch); absent where there is no such call (NATS core). */
  publishBatch?(events: readonly BatchEvent[]): Promise<unknown>;
}

let client: Publisher | undefined;

/**
 * NATS core publishes without an answer: a flush (one PING/PONG round trip)
 * stands for it, shared by every publish made before it was sent.
 */
class NatsPublisher implements Publisher {
  private flushing: Promise<void> | undefined;
  constructor(private readonly nc: NatsConnection) {}
  publish(topic: string, data: Uint8Array): Promise<unknown> {
    this.nc.publish(topic, data);
    return (this.flushing ??= Promise.resolve().then(() => {
      this.flushing = undefined;
      return this.nc.flush();
    }));
  }
}

async function clientFor(a: Common): Promise<Publisher> {
  if (client !== undefined) return client;
  if (a.protocol === "nats") return (client = new NatsPublisher(await natsConnect({ servers: a.url })));
  const c = createClient(EventService, transport(a.protocol, a.url));
  return (client = {
    publish: (topic, data) => c.publish({ topic, data }),
    publishBatch: (events) => c.publishBatch({ events: events.map((e) => ({ topic: e.topic, data: e.data })) }),
  });
}

let published = 0;
let acked = 0;
let failures = 0;
/** The first failed call's error, for the orchestrator's notes. */
let firstError: string | undefined;
let inflight = 0;
/** Time the flow-controlled publisher waited on the window (subscribers behind) or on calls in flight (server slow to answer Publish). */
let blockedByWindowMs = 0;
let blockedByConcurrencyMs = 0;
let slowest = 0;
let stopped = false;
let wake: (() => void) | undefined;
let running: Promise<void> | undefined;

const poke = (): void => {
  const w = wake;
  wake = undefined;
  w?.();
};
const parked = (): Promise<void> => new Promise((r) => (wake = r));
const settled = (): void => {
  inflight--;
  poke();
};

/** Count a call's `events` (acked or failed) when it settles. */
function track(call: Promise<unknown>, events = 1): void {
  call.then(
    () => {
      acked += events;
      settled();
    },
    (e: unknown) => {
      failures += events;
      firstError ??= e instanceof Error ? e.message : String(e);
      settled();
    },
  );
}

async function flow(a: Common & { window: number; concurrency: number }): Promise<void> {
  const c = await clientFor(a);
  const data = new Uint8Array(a.bytes).fill(0x61);
  const safety = setInterval(poke, 50);
  try {
    while (!stopped) {
      if (inflight >= a.concurrency || published - slowest >= a.window) {
        const byWindow = inflight < a.concurrency;
        const t = now();
        await parked();
        if (byWindow) blockedByWindowMs += now() - t;
        else blockedByConcurrencyMs += now() - t;
        continue;
      }
      published++;
      inflight++;
      track(c.publish(a.topic, data));
    }
    while (inflight > 0) await parked();
  } finally {
    clearInterval(safety);
  }
}

async function paced(a: Common & { rate: number; durationMs: number }): Promise<void> {
  const c = await clientFor(a);
  const interval = 1000 / a.rate;
  const start = now();
  const end = start + a.durationMs;
  for (let next = start; next < end && !stopped; next += interval) {
    const wait = next - now();
    if (wait > 0) await sleep(wait);
    const data = new Uint8Array(a.bytes).fill(0x61);
    new DataView(data.buffer).setFloat64(0, now(), true);
    published++;
    inflight++;
    track(c.publish(a.topic, data));
  }
  while (inflight > 0) await parked();
}

/** What `throughput` takes: `call` publishBatch sends `batch` events per call, publish one. */
interface ThroughputArgs extends Common {
  topics: string[];
  call: "publish" | "publishBatch";
  batch: number;
  concurrency: number;
}

/** One call's promise: the next event (Publish) or the next `batch` events (PublishBatch), topics round robin from `next`. */
function throughputCall(c: Publisher, a: ThroughputArgs, data: Uint8Array, next: number): { call: Promise<unknown>; events: number } {
  const topic = (i: number): string => a.topics[(next + i) % a.topics.length]!;
  if (a.call === "publish") return { call: c.publish(topic(0), data), events: 1 };
  if (c.publishBatch === undefined) throw new Error(`${a.protocol} has no PublishBatch`);
  const events = Array.from({ length: a.batch }, (_, i) => ({ topic: topic(i), data }));
  return { call: c.publishBatch(events), events: a.batch };
}

async function throughput(a: ThroughputArgs): Promise<void> {
  const c = await clientFor(a);
  const data = new Uint8Array(a.bytes).fill(0x61);
  while (!stopped) {
    if (inflight >= a.concurrency) {
      await parked();
      continue;
    }
    const { call, events } = throughputCall(c, a, data, published);
    published += events;
    inflight++;
    track(call, events);
  }
  while (inflight > 0) await parked();
}

const counts = () => ({ published, acked, failures, firstError, blockedByWindowMs, blockedByConcurrencyMs });

serveParent({
  /** Start publishing (flow, paced or throughput); returns at once. */
  start(raw) {
    const a = raw as unknown as ThroughputArgs & { mode: "flow" | "paced" | "throughput"; window: number; rate: number; durationMs: number };
    if (running !== undefined) throw new Error("already publishing");
    stopped = false;
    running = a.mode === "flow" ? flow(a) : a.mode === "paced" ? paced(a) : throughput(a);
    void running.then(() => emit("done", counts()));
    return { t: now() };
  },
  /** (notification) the slowest subscriber's event count. */
  slowest(raw) {
    slowest = raw.min as number;
    poke();
  },
  mark: () => ({ t: now(), cpu: process.cpuUsage(), ...counts() }),
  /** Wait until the publishing ends by itself (paced), return the counts. */
  async wait() {
    await running;
    running = undefined;
    return counts();
  },
  /** Stop publishing, wait for the calls in flight, return the counts. */
  async stop() {
    stopped = true;
    poke();
    await running;
    running = undefined;
    return counts();
  },
  exit: () => {
    setImmediate(() => process.exit(0));
  },
});
emit("ready", { pid: process.pid });
