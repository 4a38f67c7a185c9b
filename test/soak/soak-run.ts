/**
 * The soak: `runnel serve` in its own process, a publisher at a steady rate
 * over many topics (in this process), resumable subscribers in host
 * processes of their own plus `runnel subscribe` child processes, and a chaos
 * loop that hits random subscribers (abort, socket destroy, silent relay,
 * SIGKILL). Retention is filled before the subscribers start, so the
 * server's memory starts at its plateau and a climb means a leak. Afterwards
 * every subscriber must have every event exactly once (or an honest Gap) and
 * the server must be back to its baseline: no stream, no resource held, no
 * bus subscription, no CLOSE_WAIT, its fds as before.
 */
import { spawnChild, type Child } from "../../bench/ipc.js";
import { matches } from "../../src/bus/topic.js";
import { CLI } from "../harness/built.js";
import { startChildServer, type ChildServer } from "../harness/child-server.js";
import { waitFor } from "../harness/server.js";
import { sumTotals, type DeliveryTotals } from "./delivery-check.js";
import { readServer, type ServerReading } from "./server-probe.js";
import { SoakPublisher } from "./soak-publisher.js";
import { ChildSubscriber, type ChaosKind, type SoakSubscriber } from "./soak-subscriber.js";
import type { HostReport, SubscriberSpec } from "./subscriber-host-child.js";

/** How big and how long. */
export interface SoakOptions {
  readonly subscribers: number;
  /** Of `subscribers`, how many are `runnel subscribe` child processes (SIGKILL targets). */
  readonly childSubscribers: number;
  /** Of the others, how many subscribe to the pattern `soak.>` (every topic). */
  readonly patternSubscribers: number;
  /** Processes the in-process subscribers are spread over. */
  readonly hostProcesses: number;
  readonly topics: number;
  readonly publishPerSecond: number;
  readonly durationMs: number;
  readonly chaosEveryMs: number;
  /** Events retained per topic, in seconds of publishing; a subscriber down longer gets a Gap. */
  readonly retentionSeconds: number;
  /** `--bus` of the server (default: its embedded memory bus). */
  readonly bus?: string;
  readonly log: (line: string) => void;
}

/** The figures of a run. */
export interface SoakReport extends DeliveryTotals {
  published: number;
  /** Achieved publish rate during the chaos, events/s. */
  publishedPerSecond: number;
  publishFailures: number;
  /** Publishes retried after Unavailable. */
  publishRetries: number;
  prefilled: number;
  chaos: Record<ChaosKind, number>;
  /** Subscribers started again from their cursor (after abort or SIGKILL). */
  restarts: number;
  /** Times a resumable client came back by itself (socket destroyed, silent relay, server Closing). */
  resumes: number;
  /** Subscribers that had not caught up within the catch-up bound. */
  behind: number;
  catchUpMs: number;
  /** The server after the prefill, before any subscriber. */
  baseline: ServerReading;
  /** The server once every client was gone. */
  after: ServerReading;
  /** Server RSS and V8 heap in use, MB, and its live streams, once a second during the chaos. */
  samples: { rssMb: number; heapUsedMb: number; streams: number }[];
  serverExitCode: number | null;
  seconds: number;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const HOST_SCRIPT = new URL("../../dist/test/soak/subscriber-host-child.js", import.meta.url);

/** Server flags: silent peers found fast, no per-address limit (every client is 127.0.0.1), the retention asked for. */
function serverArgs(o: SoakOptions, retentionEvents: number): string[] {
  return [
    "--ping-interval-ms", "1000", "--ping-timeout-ms", "3000", "--write-timeout-ms", "3000", "--heartbeat-min-ms", "500",
    "--max-streams-per-peer", "100000", "--retention-events", String(retentionEvents),
    ...(o.bus === undefined ? [] : ["--bus", o.bus]),
  ];
}

/** Run a soak; returns the figures (assertions are the caller's). */
export async function runSoak(o: SoakOptions): Promise<SoakReport> {
  const started = Date.now();
  const topics = Array.from({ length: o.topics }, (_, i) => `soak.t${i}`);
  const retentionEvents = Math.max(100, Math.ceil((o.publishPerSecond / o.topics) * o.retentionSeconds));
  const server: ChildServer = await startChildServer(0, serverArgs(o, retentionEvents));
  const pid = server.process.pid!;
  const hosts: Child[] = [];
  const childSubs: SoakSubscriber[] = [];
  try {
    // 1. Fill every topic's retention, so the server's memory starts where it will stay.
    const publisher = new SoakPublisher(server.url, topics);
    await publisher.prefill(retentionEvents);
    const prefill = publisher.count;
    const startSeqs = new Map(publisher.published);
    o.log(`soak: ${prefill} events prefilled (${retentionEvents} per topic) in ${Math.round((Date.now() - started) / 1000)} s`);
    // The baseline is the smallest of a few readings (see step 5 on the reading's own connection).
    let baseline = await readServer(server.url, pid, server.port);
    for (let i = 0; i < 4; i++) {
      await sleep(100);
      const r = await readServer(server.url, pid, server.port);
      if (r.fds < baseline.fds) baseline = r;
    }

    // 2. Subscribers: the in-process ones spread over host processes, the CLI ones children of this process.
    const perHost: SubscriberSpec[][] = Array.from({ length: o.hostProcesses }, () => []);
    for (let i = o.childSubscribers; i < o.subscribers; i++) {
      const pattern = i < o.childSubscribers + o.patternSubscribers;
      perHost[i % o.hostProcesses]!.push({ topic: pattern ? "soak.>" : topics[i % topics.length]!, transport: i, viaProxy: i % 2 === 0 });
    }
    const targets: { kinds: readonly ChaosKind[]; hit: (kind: ChaosKind) => void }[] = [];
    await Promise.all(perHost.map(async (specs, h) => {
      const { child } = await spawnChild(`soak subscriber host ${h + 1}`, HOST_SCRIPT, []);
      hosts.push(child);
      await child.call("start", { serverPort: server.port, specs, startSeqs, silenceTimeoutMs: 5_000 }, 300_000);
      specs.forEach((spec, index) => targets.push({
        kinds: spec.viaProxy ? ["abort", "socket_destroy", "silent_proxy"] : ["abort"],
        hit: (kind) => child.notify("hit", { index, kind }),
      }));
    }));
    for (let i = 0; i < o.childSubscribers; i++) childSubs.push(new ChildSubscriber(CLI, server.url, topics[i % topics.length]!, startSeqs));
    await Promise.all(childSubs.map((s) => s.ready));
    for (const s of childSubs) targets.push(s);
    o.log(`soak: ${targets.length} subscribers up at ${Math.round((Date.now() - started) / 1000)} s`);

    // 3. Publish at the rate while chaos hits random subscribers.
    const chaosStart = Date.now();
    publisher.start(o.publishPerSecond);
    const chaos: Record<ChaosKind, number> = { abort: 0, socket_destroy: 0, silent_proxy: 0, sigkill: 0 };
    const samples: SoakReport["samples"] = [];
    let lastSample = 0;
    while (Date.now() < chaosStart + o.durationMs) {
      const victim = targets[Math.floor(Math.random() * targets.length)]!;
      const kind = victim.kinds[Math.floor(Math.random() * victim.kinds.length)]!;
      victim.hit(kind);
      chaos[kind]++;
      if (Date.now() - lastSample >= 1_000) {
        lastSample = Date.now();
        const r = await readServer(server.url, pid, server.port);
        samples.push({ rssMb: r.rssMb, heapUsedMb: r.heapUsedMb, streams: r.streams });
        if (samples.length % 30 === 0) {
          const rate = Math.round((publisher.count - prefill) / ((Date.now() - chaosStart) / 1000));
          o.log(`soak ${Math.round((Date.now() - chaosStart) / 1000)} s: published ${publisher.count} (${rate}/s), streams ${r.streams}, server rss ${r.rssMb} MB, heap ${r.heapUsedMb} MB, fds ${r.fds}, retained ${r.retainedEvents}`);
        }
      }
      await sleep(o.chaosEveryMs);
    }
    await publisher.stop();
    const chaosSeconds = (Date.now() - chaosStart) / 1000;

    // 4. Catch-up: every subscriber reaches the last seq of every topic it covers, then stops.
    const catchUpStart = Date.now();
    const catchUpBoundMs = 180_000;
    const published = publisher.published;
    const hostReports = await Promise.all(hosts.map((h) => h.call<HostReport>("finish", { published, timeoutMs: catchUpBoundMs }, catchUpBoundMs + 60_000)));
    const childBehind = (): number => childSubs.filter((s) => !s.check.caughtUp(published, (t) => matches(s.topic, t))).length;
    await waitFor(() => childBehind() === 0, Math.max(5_000, catchUpBoundMs - (Date.now() - catchUpStart)), "the CLI subscribers to catch up").catch(() => undefined);
    const behind = childBehind() + hostReports.reduce((n, r) => n + r.behind, 0);
    const catchUpMs = Date.now() - catchUpStart;
    await Promise.all(childSubs.map((s) => s.stop()));
    await Promise.all(hosts.map((h) => h.stop()));

    // 5. The server, once every client is gone, must be back to its baseline. (Each reading's own /metrics
    // connection may or may not be closed yet when its fds are counted: the reading that settles is the one kept.)
    let after = await readServer(server.url, pid, server.port);
    const settled = async (): Promise<boolean> => {
      after = await readServer(server.url, pid, server.port);
      return after.streams === 0 && after.resourcesHeld === 0 && after.busSubscriptions === 0 && after.closeWait === 0 && after.fds <= baseline.fds;
    };
    await waitFor(settled, 30_000, "the server back to its baseline").catch(() => undefined);

    const checks = [...hostReports, ...childSubs.map((s) => s.check)];
    const totals = sumTotals(checks);
    await server.kill("SIGTERM");
    return {
      ...totals,
      published: publisher.count,
      publishedPerSecond: Math.round((publisher.count - prefill) / chaosSeconds),
      publishFailures: publisher.failures,
      publishRetries: publisher.retries,
      prefilled: prefill,
      chaos,
      restarts: hostReports.reduce((n, r) => n + r.restarts, 0) + childSubs.reduce((n, s) => n + s.restarts, 0),
      resumes: hostReports.reduce((n, r) => n + r.resumes, 0),
      behind,
      catchUpMs,
      baseline,
      after,
      samples,
      serverExitCode: server.process.exitCode,
      seconds: Math.round((Date.now() - started) / 1000),
    };
  } finally {
    await Promise.all(childSubs.map((s) => s.stop()));
    await Promise.all(hosts.map((h) => h.stop()));
    await server.kill("SIGKILL");
  }
}
