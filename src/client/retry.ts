/**
 * When a resumable stream tries again, and how long it waits: which call
 * endings are worth a retry (the server or the network went away; not a bad
 * request), and an exponential backoff with jitter and a bound on attempts,
 * so a fleet of clients that lost the same server does not come back in step.
 */
import { Code, ConnectError } from "@connectrpc/connect";

/** How a resumable stream retries. */
export interface RetryPolicy {
  /** Delay before the first retry, ms (before jitter). */
  readonly initialDelayMs: number;
  /** Largest delay between attempts, ms. */
  readonly maxDelayMs: number;
  /** Attempts in a row that may fail before the stream gives up and throws the last error. */
  readonly maxAttempts: number;
  /** A stream that stayed open this long (or delivered data) counts as recovered: the attempt count starts over. */
  readonly stableMs: number;
}

/** The defaults: about half a minute of a server being unreachable before giving up. */
export const DEFAULT_RETRY: RetryPolicy = {
  initialDelayMs: 200,
  maxDelayMs: 10_000,
  maxAttempts: 10,
  stableMs: 5_000,
};

/**
 * Codes that say "the server or the path to it failed", not "your request is
 * wrong". connect-node reports a lost connection as Unavailable (refused),
 * Aborted (reset), Internal (an HTTP/2 session closed with an error, a
 * premature close) or Canceled (the server reset the stream); browsers'
 * fetch failures arrive as Unknown.
 */
const TRANSIENT = new Set<Code>([Code.Unavailable, Code.Aborted, Code.Internal, Code.Unknown, Code.Canceled]);

/** Whether a call that ended with `error` (and not by the caller's own abort) should be tried again. */
export function isTransient(error: ConnectError): boolean {
  return TRANSIENT.has(error.code);
}

/** The wait before attempt `attempt` (1 = first retry): exponential, capped, with "equal jitter" (half fixed, half random). */
export function backoffDelay(policy: RetryPolicy, attempt: number, random: () => number = Math.random): number {
  const base = Math.min(policy.maxDelayMs, policy.initialDelayMs * 2 ** Math.min(attempt - 1, 30));
  return Math.round(base / 2 + random() * (base / 2));
}

/** The error a stream ends with when its caller aborted it. */
export function canceledBy(signal: AbortSignal): ConnectError {
  return ConnectError.from(signal.reason ?? new Error("aborted"), Code.Canceled);
}

/** Wait `ms`, or reject with Canceled as soon as `signal` aborts (the timer and listener are gone either way). */
export function sleep(ms: number, signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.reject(canceledBy(signal));
  return new Promise((resolve, reject) => {
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(canceledBy(signal));
    };
    const timer = setTimeout(() => {
      signal.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal.addEventListener("abort", onAbort, { once: true });
  });
}
