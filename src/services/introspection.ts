/**
 * The standard services that describe a server to tools and load balancers:
 * grpc.health.v1.Health and gRPC server reflection (v1 and v1alpha). Both
 * describe whatever the router serves when this is called, so register them
 * last: a service added to the server shows up in both without more wiring.
 */
import type { ConnectRouter } from "@connectrpc/connect";
import type { Config } from "../config.js";
import type { Ledger } from "../stream/ledger.js";
import { Health } from "../../gen/grpc/health/v1/health_pb.js";
import { createHealthService } from "./health-service.js";
import { createReflectionV1, createReflectionV1Alpha, DescriptorIndex, REFLECTION_SERVICES } from "./reflection-service.js";

/** Register Health and reflection for every service already on `router`. */
export function registerIntrospection(router: ConnectRouter, deps: { ledger: Ledger; config: Config; serving: () => boolean }): void {
  const served = [...new Set(router.handlers.map((h) => h.service)), Health, ...REFLECTION_SERVICES];
  router.service(Health, createHealthService({ ...deps, services: served.map((s) => s.typeName) }));
  const index = new DescriptorIndex(served);
  router.service(REFLECTION_SERVICES[0], createReflectionV1(index));
  router.service(REFLECTION_SERVICES[1], createReflectionV1Alpha(index));
}
