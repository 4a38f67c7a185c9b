/**
 * The soak: a publisher at a steady rate over many topics, resumable
 * subscribers (in-process and child processes), and a chaos loop that kills
 * random subscribers by abort, socket destroy, a silent relay or SIGKILL.
 * Afterwards every subscriber must have every event exactly once (or an
 * honest Gap), and the server must be back to its baseline.
 */
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { EventService } from "../../gen/runnel/v1/event_pb.js";
import { matches } from "../../src/bus/topic.js";
import type { RunnelServer } from "../../src/server.js";
import { waitFor } from "../harness/server.js";
import { ChildSubscriber, InProcessSubscriber, type ChaosKind, type SoakSubscriber } from "./soak-subscriber.js";

/** How big and how long. */
export interface SoakOptions {
  readonly subscribers: number;
  /** Of `subscribers`, how many are child processes (SIGKILL targets). */
  readonly childSubscribers: number;
  /** Of the in-process ones, how many subscribe to the pattern `soak.>` (all topics). */
  readonly patternSubscribers: number;
  readonly topics: number;
  readonly publishPerSecond: number;
  readonly durationMs: number;
  readonly chaosEveryMs: number;
  /** Path of the built CLI (dist/src/cli.js), for child subscribers. */
  readonly cliPath: string;
  readonly log: (line: string) => void;
}

/** The figures of a run. */
export interface SoakReport {
  published: number;
  /** Achieved publish rate, events/s (below the target when the machine cannot keep up). */
  publishedPerSecond: number;
  publishFailures: number;
  /** Publishes retried after Unavailable (the publisher's own connection was lost: keepalive under load). */
  publishRetries: number;
  received: number;
  duplicates: number;
  holes: number;
  gapped: number;
  chaos: Record<ChaosKind, number>;
  restarts: number;
  catchUpMs: number;
  rssMb: number[];
  seconds: number;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** A publish retried (up to 3 times) when its connection was lost; other errors are failures. */
async function publishWithRetry<T>(call: () => Promise<T>, onRetry: () => void): Promise<T> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await call();
    } catch (e) {
      if (attempt >= 3 || ConnectError.from(e).code !== Code.Unavailable) throw e;
      onRetry();
      await sleep(100);
    }
  }
}

/** Run a soak against `server`; returns the figures (assertions are the caller's). */
export async function runSoak(server: RunnelServer, o: SoakOptions): Promise<SoakReport> {
  const started = Date.now();
  const topics = Array.from({ length: o.topics }, (_, i) => `soak.t${i}`);
  const subs: SoakSubscriber[] = [];
  // Subscribers start spread over a ramp (a tenth of the run, at most 30 s), not all in the same instant.
  const rampMs = Math.min(30_000, o.durationMs / 10);
  for (let i = 0; i < o.subscribers; i++) {
    if (i > 0) await sleep(rampMs / o.subscribers);
    if (i < o.childSubscribers) subs.push(new ChildSubscriber(o.cliPath, server.url, topics[i % topics.length]!));
    else if (i < o.childSubscribers + o.patternSubscribers) subs.push(new InProcessSubscriber(server.port, "soak.>", i, i % 2 === 0, 5_000));
    else subs.push(new InProcessSubscriber(server.port, topics[i % topics.length]!, i, i % 2 === 0, 5_000));
  }

  // Publisher: a tick every 20 ms publishing its share of the rate, round robin over the topics.
  const publisher = createClient(EventService, createGrpcTransport({ baseUrl: server.url }));
  const published = new Map<string, bigint>();
  let publishedCount = 0;
  let publishFailures = 0;
  let publishRetries = 0;
  let next = 0;
  let publishing = true;
  // Publishes are pipelined (up to 256 in flight), so round-trip time does not cap the rate.
  const inFlight = new Set<Promise<void>>();
  const publishLoop = (async () => {
    const from = Date.now();
    while (publishing) {
      // What the rate owes by now (a slow tick is made up for, up to a tenth of a second's worth at once).
      const owed = Math.min(Math.floor((o.publishPerSecond * (Date.now() - from)) / 1000) - next, Math.ceil(o.publishPerSecond / 10));
      for (let i = 0; i < owed && inFlight.size < 256; i++) {
        const topic = topics[next++ % topics.length]!;
        const data = new TextEncoder().encode(`e${next}`);
        const p: Promise<void> = publishWithRetry(() => publisher.publish({ topic, data }), () => publishRetries++)
          .then(
            (r) => {
              publishedCount++;
              if (r.seq > (published.get(topic) ?? 0n)) published.set(topic, r.seq);
            },
            () => void publishFailures++,
          )
          .finally(() => inFlight.delete(p));
        inFlight.add(p);
      }
      await sleep(20);
    }
  })();

  // Chaos and RSS sampling.
  const chaos: Record<ChaosKind, number> = { abort: 0, socket_destroy: 0, silent_proxy: 0, sigkill: 0 };
  const rssMb: number[] = [];
  const chaosEnd = started + o.durationMs;
  let lastSample = 0;
  while (Date.now() < chaosEnd) {
    const victim = subs[Math.floor(Math.random() * subs.length)]!;
    const kind = victim.kinds[Math.floor(Math.random() * victim.kinds.length)]!;
    victim.hit(kind);
    chaos[kind]++;
    if (Date.now() - lastSample >= 1_000) {
      lastSample = Date.now();
      rssMb.push(Math.round(process.memoryUsage().rss / 1048576));
      if (rssMb.length % 30 === 0) {
        const states: Record<string, number> = {};
        for (const s of subs) if (s instanceof InProcessSubscriber) states[s.state] = (states[s.state] ?? 0) + 1;
        o.log(`soak ${Math.round((Date.now() - started) / 1000)} s: published ${publishedCount}, live streams ${server.ledger.size}, in-process subscribers ${JSON.stringify(states)}, rss ${rssMb.at(-1)} MB`);
      }
    }
    await sleep(o.chaosEveryMs);
  }
  publishing = false;
  await publishLoop;
  await Promise.all(inFlight);
  const publishSeconds = (Date.now() - started) / 1000;

  // Catch-up: every subscriber reaches the last seq of every topic it covers.
  const catchUpStart = Date.now();
  await waitFor(
    () => subs.every((s) => s.check.caughtUp(published, (t) => matches(s.topic, t))),
    120_000,
    "every subscriber to catch up",
  );
  const catchUpMs = Date.now() - catchUpStart;
  await Promise.all(subs.map((s) => s.stop()));
  const sum = (f: (s: SoakSubscriber) => number): number => subs.reduce((n, s) => n + f(s), 0);
  return {
    published: publishedCount,
    publishedPerSecond: Math.round(publishedCount / publishSeconds),
    publishFailures,
    publishRetries,
    received: sum((s) => s.check.received),
    duplicates: sum((s) => s.check.duplicates),
    holes: sum((s) => s.check.holes),
    gapped: sum((s) => s.check.gapped),
    chaos,
    restarts: sum((s) => s.restarts),
    catchUpMs,
    rssMb,
    seconds: Math.round((Date.now() - started) / 1000),
  };
}
