/**
 * The TypeScript client for runnel: resumable `subscribe()` and `tail()` over
 * any connect-es Transport (connect-node, connect-web; Connect, gRPC, gRPC-web).
 */
export { subscribe, type SubscribeInit } from "./subscribe.js";
export { tail, type TailInit } from "./tail.js";
export { ResumableStream, type ResumeOptions, type RetryInfo } from "./resumable.js";
export { DEFAULT_RETRY, type RetryPolicy } from "./retry.js";
