/**
 * Prometheus gauges of the Redis bus: connection state, reconnects and the
 * reader's lag. Registered only when the server runs the Redis bus.
 */
import { Counter, Gauge, type Registry } from "prom-client";
import type { RedisBus } from "./redis-bus.js";

/** Adds the Redis bus's metrics to `registry`; they read `bus.health()` at scrape time. */
export function registerRedisMetrics(registry: Registry, bus: RedisBus): void {
  new Gauge({
    name: "runnel_redis_connected",
    help: "1 when both of this node's Redis connections (commands, reader) are ready, else 0",
    registers: [registry],
    collect() {
      this.set(bus.health().connected ? 1 : 0);
    },
  });
  new Counter({
    name: "runnel_redis_reconnects_total",
    help: "Redis connections restored after a loss, since start",
    registers: [registry],
    collect() {
      this.reset();
      this.inc(bus.health().reconnects);
    },
  });
  new Gauge({
    name: "runnel_redis_reader_lag_seconds",
    help: "For the last event this node's firehose reader took: from its append in Redis to its dispatch here",
    registers: [registry],
    collect() {
      this.set(bus.health().readerLagMs / 1000);
    },
  });
}
