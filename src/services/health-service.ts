/**
 * grpc.health.v1.Health, for load balancers, orchestrators and gRPC clients
 * that check a server the standard way. Check answers at once; Watch is a
 * server stream on the same lifecycle core as Subscribe (ledger, heartbeat,
 * every way of ending), so a watcher never outlives its client either.
 *
 * Status: SERVING for the whole server ("") and for every service it serves
 * until shutdown begins, NOT_SERVING from then on. A Watch stream re-sends
 * its status as its heartbeat, and its last message, when the server ends it
 * for shutdown, is NOT_SERVING.
 */
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, type ServiceImpl } from "@connectrpc/connect";
import { streamLimitsOf, type Config } from "../config.js";
import { openStream, type StreamLimits, type StreamMessages } from "../stream/live-stream.js";
import type { Ledger } from "../stream/ledger.js";
import {
  Health,
  HealthCheckResponse_ServingStatus as ServingStatus,
  HealthCheckResponseSchema,
  type HealthCheckResponse,
} from "../../gen/grpc/health/v1/health_pb.js";

/** The Watch rpc as the ledger and metrics label it. */
export const HEALTH_WATCH_RPC = `${Health.typeName}/Watch`;

/** What the health service needs. */
export interface HealthServiceDeps {
  readonly ledger: Ledger;
  readonly config: Config;
  /** Fully-qualified names of the services the server serves. */
  readonly services: readonly string[];
  /** False once shutdown began. */
  readonly serving: () => boolean;
}

/** Build the Health implementation. */
export function createHealthService(deps: HealthServiceDeps): ServiceImpl<typeof Health> {
  const { ledger, config } = deps;
  const known = new Set(["", ...deps.services]);
  // A watcher gets a handful of messages in its life: a small queue is plenty.
  const limits: StreamLimits = { ...streamLimitsOf(config), queue: { maxItems: 16, maxBytes: 4096 } };
  const statusOf = (service: string): ServingStatus => {
    if (!known.has(service)) return ServingStatus.SERVICE_UNKNOWN;
    return deps.serving() ? ServingStatus.SERVING : ServingStatus.NOT_SERVING;
  };
  return {
    check(req) {
      if (!known.has(req.service)) throw new ConnectError(`unknown service "${req.service}"`, Code.NotFound);
      return create(HealthCheckResponseSchema, { status: statusOf(req.service) });
    },
    watch(req, ctx) {
      const settings = { rpc: HEALTH_WATCH_RPC, topic: req.service, limits, policy: "disconnect" as const, heartbeatMs: config.heartbeatMs };
      return openStream<HealthCheckResponse>(ctx, ledger, settings, watchMessages(() => statusOf(req.service)), (stream) => {
        stream.send(status(statusOf(req.service)));
      });
    },
  };
}

function status(value: ServingStatus): HealthCheckResponse {
  return create(HealthCheckResponseSchema, { status: value });
}

/** A Watch stream's own messages: its heartbeat repeats the status; its last message on shutdown is NOT_SERVING. */
function watchMessages(current: () => ServingStatus): StreamMessages<HealthCheckResponse> {
  return {
    heartbeat: () => status(current()),
    closing: (cause) => status(cause === "shutdown" ? ServingStatus.NOT_SERVING : current()),
    cursorOf: () => undefined,
    dropKey: () => undefined,
    dropped: () => status(current()),
  };
}
