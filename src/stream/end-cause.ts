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
 * How close to its deadline a call must be for a client-side abort to count as
 * the deadline (at most half the deadline itself). A client's deadline timer
 * starts before the server's (the server starts its own when the request
 * arrives), so a client that gives up at its deadline closes the stream a
 * little before the server's timer fires: connect-es sends
 * RST_STREAM(INTERNAL_ERROR) on HTTP/2 and closes the socket on HTTP/1.1.
 * Without this, the same deadline would be counted as "deadline",
 * "disconnect" or "canceled" depending on which timer won. The price: a client
 * that cancels on purpose in the last moments before its deadline is counted
 * as a deadline.
 */
export const DEADLINE_SLACK_MS = 1_000;

/** What the server knows when a request's signal aborts without the server having asked for it. */
export interface ClientAbortFacts {
  /** Keepalive condemned the connection (HTTP/2 PING unanswered). */
  readonly peerDead: boolean;
  /** The connection under the stream is gone (socket closed or HTTP/2 session destroyed). */
  readonly connectionLost?: boolean;
  /** The call's deadline as the server first saw it, ms (undefined: none). */
  readonly deadlineMs?: number;
  /** What is left of the deadline now, ms (undefined: none). */
  readonly remainingMs?: number;
}

/**
 * Classify an abort of the request signal that the server did not start:
 * a peer found dead by keepalive; a deadline (the server's own, or a client
 * leaving within the slack before it); a lost connection (the socket or the
 * whole HTTP/2 session went away: node then reports the session's streams as
 * RST_STREAM(CANCEL) although no client sent one); an HTTP/2 cancel; or
 * otherwise a disconnect (an HTTP/1.1 client that goes away only closes its
 * socket).
 */
export function causeOfClientAbort(reason: unknown, facts: ClientAbortFacts): EndCause {
  if (facts.peerDead) return "dead_peer";
  if (reason instanceof ConnectError && reason.code === Code.DeadlineExceeded) return "deadline";
  if (facts.remainingMs !== undefined) {
    const slack = Math.min(DEADLINE_SLACK_MS, (facts.deadlineMs ?? Infinity) / 2);
    if (facts.remainingMs <= slack) return "deadline";
  }
  if (facts.connectionLost === true) return "disconnect";
  if (reason instanceof ConnectError && reason.code === Code.Canceled) return "canceled";
  return "disconnect";
}
