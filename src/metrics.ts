/**
 * Prometheus metrics. Gauges are read from the ledger and the bus at scrape
 * time (the ledger is the truth; nothing here keeps its own count of live
 * things); counters read the ledger's totals at scrape time and the release
 * histogram is fed, in batches, by a ledger observer.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";
import type { Bus } from "./bus/bus.js";
import { isRedisBus } from "./bus/redis-config.js";
import { registerRedisMetrics } from "./bus/redis-metrics.js";
import { END_CAUSES } from "./stream/end-cause.js";
import type { Ledger } from "./stream/ledger.js";

/** Sources of tail gauges; the tail service registers itself when present. */
export interface TailGauges {
  watchers(): number;
  openFiles(): number;
}

let defaultRegistry: Registry | undefined;

/** Process metrics are process-wide: collect them once, whatever the number of servers in the process. */
function processRegistry(): Registry {
  if (defaultRegistry === undefined) {
    defaultRegistry = new Registry();
    collectDefaultMetrics({ register: defaultRegistry });
  }
  return defaultRegistry;
}

/** The metrics of one server. */
export interface Metrics {
  /** Prometheus text of this server's and the process's metrics. */
  render(): Promise<string>;
  readonly contentType: string;
  /** This server's registry, for modules that bring their own metrics (limits, auth). */
  readonly registry: Registry;
  readonly published: Counter;
  readonly pingFailures: Counter;
  setTailGauges(gauges: TailGauges): void;
}

/** Create the registry of one server, wired to its ledger and bus. */
export function createMetrics(ledger: Ledger, bus: Bus, rpcs: readonly string[]): Metrics {
  const registry = new Registry();
  let tail: TailGauges = { watchers: () => 0, openFiles: () => 0 };

  new Gauge({
    name: "runnel_streams_active",
    help: "Live streams, by RPC",
    labelNames: ["rpc"],
    registers: [registry],
    collect() {
      const counts = ledger.countByRpc();
      for (const rpc of rpcs) this.set({ rpc }, counts.get(rpc) ?? 0);
      for (const [rpc, n] of counts) if (!rpcs.includes(rpc)) this.set({ rpc }, n);
    },
  });
  new Gauge({
    name: "runnel_bus_subscriptions_active",
    help: "Open bus subscriptions",
    registers: [registry],
    collect() {
      this.set(bus.stats().subscriptionsActive);
    },
  });
  new Gauge({
    name: "runnel_bus_retained_events",
    help: "Events retained by the bus",
    registers: [registry],
    collect() {
      this.set(bus.stats().retainedEvents);
    },
  });
  new Gauge({
    name: "runnel_stream_resources_held",
    help: "Resources held by live streams, by kind",
    labelNames: ["kind"],
    registers: [registry],
    collect() {
      this.reset();
      for (const [kind, n] of ledger.resourceTotals()) this.set({ kind }, n);
    },
  });
  new Gauge({
    name: "runnel_tail_watchers_active",
    help: "File watchers open for Tail",
    registers: [registry],
    collect() {
      this.set(tail.watchers());
    },
  });
  new Gauge({
    name: "runnel_tail_open_files",
    help: "Files open for Tail",
    registers: [registry],
    collect() {
      this.set(tail.openFiles());
    },
  });
  new Counter({
    name: "runnel_streams_ended_total",
    help: "Streams ended, by RPC and cause",
    labelNames: ["rpc", "cause"],
    registers: [registry],
    collect() {
      this.reset();
      for (const rpc of rpcs) for (const cause of END_CAUSES) this.inc({ rpc, cause }, 0);
      for (const [rpc, cause, n] of ledger.endedTotals()) this.inc({ rpc, cause }, n);
    },
  });
  // Release times are buffered and observed at scrape time (or every 1,024 ends), so a stream's
  // release path pays an array push, not prom-client's label hashing.
  const pendingRelease: number[] = [];
  const release = new Histogram({
    name: "runnel_stream_release_seconds",
    help: "From the moment a stream's end is known to the moment all its resources are released",
    buckets: [0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5],
    registers: [registry],
    collect() {
      flushRelease();
    },
  });
  const flushRelease = (): void => {
    for (const seconds of pendingRelease) release.observe(seconds);
    pendingRelease.length = 0;
  };
  const published = new Counter({ name: "runnel_events_published_total", help: "Events published", registers: [registry] });
  new Counter({
    name: "runnel_events_delivered_total",
    help: "Events handed to subscriber transports",
    registers: [registry],
    collect() {
      this.reset();
      this.inc(ledger.deliveredTotal);
    },
  });
  new Counter({
    name: "runnel_events_dropped_total",
    help: "Events dropped for slow consumers (drop-oldest policy)",
    registers: [registry],
    collect() {
      this.reset();
      this.inc(ledger.droppedTotal);
    },
  });
  const pingFailures = new Counter({
    name: "runnel_h2_ping_failures_total",
    help: "HTTP/2 sessions closed because a keepalive PING went unanswered",
    registers: [registry],
  });
  if (isRedisBus(bus)) registerRedisMetrics(registry, bus);
  ledger.observe({
    ended(_rpc, _cause, seconds) {
      pendingRelease.push(seconds);
      if (pendingRelease.length >= 1024) flushRelease();
    },
  });
  return {
    contentType: registry.contentType,
    registry,
    published,
    pingFailures,
    setTailGauges(gauges) {
      tail = gauges;
    },
    async render() {
      const merged = Registry.merge([processRegistry(), registry]);
      return merged.metrics();
    },
  };
}
