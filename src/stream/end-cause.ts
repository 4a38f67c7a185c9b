/**
 * Why a stream ended: the closed vocabulary of the
 * `runnel_streams_ended_total{cause}` metric, and the rule that derives it
 * from what the transport and the server know.
 */
import { Code, ConnectError } from "@connectrpc/connect";

/** Every way a stream can end. */
export type EndCause =
  | "completed"
  | "canceled"
  | "deadline"
  | "disconnect"
  | "dead_peer"
  | "slow_consumer"
  | "shutdown"
  | "lifetime"
  | "admin"
  | "error";

/** All causes, for metrics initialisation and tests. */
export const END_CAUSES: readonly EndCause[] = [
  "completed",
  "canceled",
  "deadline",
  "disconnect",
  "dead_peer",
  "slow_consumer",
  "shutdown",
  "lifetime",
  "admin",
  "error",
];

/**
 * Classify an abort of the request signal that the server did not start:
 * a deadline, an HTTP/2 cancel, a peer found dead by keepalive, or otherwise
 * a disconnect (an HTTP/1.1 client that goes away only closes its socket).
 */
export function causeOfClientAbort(reason: unknown, peerDead: boolean): EndCause {
  if (peerDead) return "dead_peer";
  if (reason instanceof ConnectError) {
    if (reason.code === Code.DeadlineExceeded) return "deadline";
    if (reason.code === Code.Canceled) return "canceled";
  }
  return "disconnect";
}
