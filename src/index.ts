/**
 * The runnel package entry: the resumable client for TypeScript callers and
 * the generated messages and service descriptors it speaks. Browser-safe (no
 * Node imports), so a bundler can take it for a web app; the server is
 * dist/src/server.js (`createServer`).
 */
export * from "./client/index.js";
export * from "../gen/runnel/v1/event_pb.js";
export * from "../gen/runnel/v1/tail_pb.js";
export * from "../gen/runnel/v1/admin_pb.js";
