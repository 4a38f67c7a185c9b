/**
 * The runnel package: the resumable client for TypeScript callers, the
 * server for embedding, and the generated service descriptors.
 */
export * from "./client/index.js";
export { createServer, type RunnelServer, type ServerParts } from "./server.js";
export { DEFAULTS, type Config } from "./config.js";
export * from "../gen/runnel/v1/event_pb.js";
export * from "../gen/runnel/v1/tail_pb.js";
export * from "../gen/runnel/v1/admin_pb.js";
