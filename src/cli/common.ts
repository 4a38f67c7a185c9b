/**
 * What every client command shares: where the server is, how a transport is
 * made, how Ctrl-C cancels the call, and how errors become one clear line.
 */
import { Code, ConnectError, type Interceptor, type Transport } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport, createGrpcWebTransport } from "@connectrpc/connect-node";
import type { RetryInfo } from "../client/index.js";

/** A user-facing failure: printed as one line, exit code attached. */
export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode = 1,
  ) {
    super(message);
    this.name = "CliError";
  }
}

/** Exit code for a command interrupted by Ctrl-C (128 + SIGINT). */
export const EXIT_INTERRUPTED = 130;

/** Flags every client command accepts. */
export const CLIENT_OPTIONS = {
  url: { type: "string" },
  protocol: { type: "string" },
  json: { type: "boolean" },
  token: { type: "string" },
} as const;

/**
 * Build a transport to the server from --url / RUNNEL_URL, --protocol
 * (connect, grpc, grpc-web) and --token / RUNNEL_TOKEN (sent as a bearer token).
 */
export function clientTransport(url: string | undefined, protocol: string | undefined, token?: string): Transport {
  const baseUrl = url ?? process.env.RUNNEL_URL ?? "http://127.0.0.1:8080";
  if (!/^https?:\/\//.test(baseUrl)) throw new CliError(`--url must start with http:// or https://, got "${baseUrl}"`);
  const bearer = token ?? process.env.RUNNEL_TOKEN;
  const interceptors: Interceptor[] =
    bearer === undefined || bearer === ""
      ? []
      : [
          (next) => (req) => {
            req.header.set("authorization", `Bearer ${bearer}`);
            return next(req);
          },
        ];
  // HTTP/2 keepalive: a session that went silent (a NAT or proxy dropped it without closing) is
  // found by an unanswered PING, and a call made after the resumable client gave up on a silent
  // stream first verifies the session (it has been quiet longer than the interval: the shortest
  // silence bound is 4 s) and opens a new one instead of queueing on the dead one. Without it,
  // connect-node never pings and would reuse the dead session for ever.
  const keepalive = { pingIntervalMs: 3_000, pingTimeoutMs: 10_000 };
  switch (protocol ?? "connect") {
    case "connect":
      return createConnectTransport({ baseUrl, httpVersion: "2", interceptors, ...keepalive });
    case "grpc":
      return createGrpcTransport({ baseUrl, interceptors, ...keepalive });
    case "grpc-web":
      return createGrpcWebTransport({ baseUrl, httpVersion: "2", interceptors, ...keepalive });
    default:
      throw new CliError(`--protocol must be connect, grpc or grpc-web, got "${protocol}"`);
  }
}

/** An AbortSignal that aborts on Ctrl-C (SIGINT) or SIGTERM; `interrupted()` tells whether that happened. */
export function interruptSignal(): { signal: AbortSignal; interrupted: () => boolean; dispose: () => void } {
  const controller = new AbortController();
  let hit = false;
  const onSignal = (): void => {
    hit = true;
    controller.abort(new ConnectError("interrupted", Code.Canceled));
  };
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);
  return {
    signal: controller.signal,
    interrupted: () => hit,
    dispose: () => {
      process.off("SIGINT", onSignal);
      process.off("SIGTERM", onSignal);
    },
  };
}

/**
 * An AbortSignal that aborts when stdout's reader goes away (EPIPE, as in
 * `runnel subscribe x | head -1`): the call is cancelled, so the server sees
 * the stream end, and the command exits quietly instead of dying on an
 * unhandled 'error' event with a stack trace. Node ignores SIGPIPE, so the
 * failed write is the only notice; like `tail -f`, it comes with the next line written.
 */
export function brokenPipeSignal(): { signal: AbortSignal; broken: () => boolean; dispose: () => void } {
  const controller = new AbortController();
  const onError = (e: NodeJS.ErrnoException): void => {
    if (e.code === "EPIPE") controller.abort(new ConnectError("stdout closed", Code.Canceled));
    else controller.abort(e);
  };
  process.stdout.on("error", onError);
  return {
    signal: controller.signal,
    broken: () => controller.signal.aborted,
    dispose: () => {
      // Writes still buffered may fail after the command ends: keep a no-op listener so they cannot crash it.
      process.stdout.off("error", onError);
      process.stdout.on("error", () => undefined);
    },
  };
}

/**
 * Run a streaming command: print every message `open` yields until the stream
 * ends (exit 0), Ctrl-C (exit 130) or stdout's reader leaves (`| head`, exit 0).
 * Both abort the signal `open` was given, so the server sees the call end at once.
 */
export async function printStream<M>(url: string | undefined, open: (signal: AbortSignal) => AsyncIterable<M>, print: (message: M) => void): Promise<number> {
  const interrupt = interruptSignal();
  const pipe = brokenPipeSignal();
  try {
    for await (const message of open(AbortSignal.any([interrupt.signal, pipe.signal]))) print(message);
    return 0;
  } catch (e) {
    if (interrupt.interrupted()) return EXIT_INTERRUPTED;
    if (pipe.broken()) return 0; // the reader took what it wanted (| head -n): not an error
    throw describeCallError(e, url);
  } finally {
    interrupt.dispose();
    pipe.dispose();
  }
}

/** One stderr line per retry of a resumable stream (subscribe, tail). */
export function reportRetry(r: RetryInfo): void {
  const from = r.cursor === "" ? "from the original start" : `after ${r.cursor}`;
  console.error(`runnel: ${Code[r.error.code]}: ${r.error.rawMessage}; resuming ${from} in ${(r.delayMs / 1000).toFixed(1)} s (attempt ${r.attempt})`);
}

/** Turn any error from a call into a CliError with one readable line. */
export function describeCallError(e: unknown, url: string | undefined): CliError {
  if (e instanceof CliError) return e;
  if (e instanceof ConnectError) {
    const cause = e.cause instanceof Error ? e.cause.message : "";
    if (e.code === Code.Unavailable && /ECONNREFUSED|ENOTFOUND|EHOSTUNREACH/.test(cause + e.rawMessage)) {
      return new CliError(`cannot reach runnel at ${url ?? process.env.RUNNEL_URL ?? "http://127.0.0.1:8080"}: ${cause || e.rawMessage}`);
    }
    return new CliError(`${Code[e.code]}: ${e.rawMessage}`);
  }
  return new CliError(e instanceof Error ? e.message : String(e));
}
