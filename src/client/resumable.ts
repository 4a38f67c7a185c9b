/**
 * The engine of the resumable client: one server stream after another, each
 * picking up at the last position the previous one reached, as one async
 * iterable. It exists because a connect-es stream alone neither resumes nor
 * cancels when its reader leaves the loop (`break`, `return`, an exception):
 * only aborting the call's signal does, so this iterator aborts its calls
 * whenever it is left, and whenever the caller's own AbortSignal fires.
 * It also watches each call for silence: a connection that goes quiet
 * without closing (a NAT or a proxy dropped it) ends no `for await` by
 * itself, so a call on which nothing arrives for longer than the server's
 * heartbeats allow is aborted and resumed like a lost connection.
 */
import { Code, ConnectError } from "@connectrpc/connect";
import { backoffDelay, canceledBy, DEFAULT_RETRY, isTransient, sleep, type RetryPolicy } from "./retry.js";

/** Told before each retry: what ended the previous stream and what comes next. */
export interface RetryInfo {
  /** 1 for the first retry after a stream ended; starts over once a stream recovered. */
  readonly attempt: number;
  /** How long the client waits before trying again, ms. */
  readonly delayMs: number;
  /** Why the previous stream ended. */
  readonly error: ConnectError;
  /** The position the next stream resumes from ("" when none is known yet: the original request is sent again). */
  readonly cursor: string;
  /** True when the server ended the stream itself with a Closing message (shutdown, lifetime, admin, slow consumer). */
  readonly serverClosed: boolean;
}

/** Options every resumable stream takes. */
export interface ResumeOptions {
  /** Aborting it ends the stream: the current call is cancelled and the iterator throws Canceled. */
  readonly signal?: AbortSignal;
  /** Backoff and bound; any field left out keeps its default (DEFAULT_RETRY). */
  readonly retry?: Partial<RetryPolicy>;
  /**
   * Whether a first call that fails before the server answered is retried too
   * (default true: a service may start before runnel is up). A command line
   * sets it false to say "cannot reach" at once.
   */
  readonly retryFirstCall?: boolean;
  /** Called before each retry (for logs and status lines). */
  readonly onRetry?: (info: RetryInfo) => void;
  /**
   * How long a call may go without any message from the server before the
   * connection is presumed dead, ms. It exists because a path that goes
   * silent without closing (a NAT that dropped its state, a stalled proxy:
   * no data, no FIN, no RST) would otherwise leave the stream waiting
   * forever; the call is aborted with Unavailable and resumed from the last
   * cursor like any lost connection. Default: 3 x the heartbeat interval the
   * server announced (Subscribed / TailStarted `heartbeat_ms`) + 1 s, and
   * 30 s until it announced one in this call. When given, it applies
   * throughout every call; 0 disables the watchdog. Over HTTP/2 the dead
   * session is the transport's, and connect-node reuses it unless told to
   * ping: give its transport a `pingIntervalMs` shorter than this bound, so
   * that the next call verifies the session and opens a new one.
   */
  readonly silenceTimeoutMs?: number;
}

/** The silence bound before the server announced its heartbeat interval (a server that accepted the connection but never answers). */
export const SILENCE_BEFORE_ANNOUNCE_MS = 30_000;

/** The silence bound once the server announced `heartbeatMs`: three missed heartbeats, and some slack. */
export function silenceBound(heartbeatMs: number): number {
  return 3 * heartbeatMs + 1_000;
}

/** What a resumable stream learns from one message. */
export interface Progress {
  /** The position to resume from after this message, when it carries one. */
  readonly cursor?: string;
  /** Data that moves the reader forward (an event, a line): the stream counts as recovered. */
  readonly data?: boolean;
  /** The server's Closing: it is ending the stream and asks to come back after this many ms. */
  readonly closingRetryAfterMs?: number;
  /** The heartbeat interval the server announced for this call (its first message says it), ms. */
  readonly heartbeatMs?: number;
}

/** How one kind of stream is opened and read; see subscribe.ts and tail.ts. */
export interface StreamKind<T> {
  /** Start a call resuming after `cursor` ("" = the original request), cancelled by `signal`. */
  open(cursor: string, signal: AbortSignal): AsyncIterable<T>;
  /** What a message says about the position; `cursor` is the position known so far. */
  progress(message: T, cursor: string): Progress;
}

/**
 * A stream that resumes by itself. Iterate it once with `for await`; leave the
 * loop any way you like and the server stream is cancelled at once.
 */
export class ResumableStream<T> implements AsyncIterableIterator<T> {
  private readonly controller = new AbortController();
  private readonly inner: AsyncGenerator<T, void, undefined>;
  private readonly policy: RetryPolicy;
  private position: string;
  private readonly detach: () => void;

  constructor(
    private readonly kind: StreamKind<T>,
    private readonly options: ResumeOptions = {},
    startCursor = "",
  ) {
    this.policy = { ...DEFAULT_RETRY, ...options.retry };
    this.position = startCursor;
    this.detach = linkAbort(options.signal, this.controller);
    this.inner = this.run();
  }

  /** The position a new stream would resume from right now ("" before the server named one). */
  get cursor(): string {
    return this.position;
  }

  /** End the stream now (the current call is cancelled). Same as leaving the loop. */
  close(): void {
    this.controller.abort(new ConnectError("stream closed by its reader", Code.Canceled));
  }

  next(): Promise<IteratorResult<T, void>> {
    return this.inner.next();
  }

  /** Called by `for await` on break, return or throw: cancel the call first, then finish. */
  return(): Promise<IteratorResult<T, void>> {
    this.close();
    return this.inner.return(undefined);
  }

  throw(error?: unknown): Promise<IteratorResult<T, void>> {
    this.close();
    return this.inner.throw(error);
  }

  [Symbol.asyncIterator](): this {
    return this;
  }

  private async *run(): AsyncGenerator<T, void, undefined> {
    const signal = this.controller.signal;
    let attempt = 0;
    let answered = false;
    try {
      for (;;) {
        let closingRetryAfterMs: number | undefined;
        let error: ConnectError;
        const openedAt = Date.now();
        let recovered = false;
        const watch = new SilenceWatch(signal, this.options.silenceTimeoutMs);
        try {
          for await (const message of this.kind.open(this.position, watch.signal)) {
            watch.arrived();
            answered = true;
            const p = this.kind.progress(message, this.position);
            if (p.cursor !== undefined && p.cursor !== "") this.position = p.cursor;
            if (p.closingRetryAfterMs !== undefined) closingRetryAfterMs = p.closingRetryAfterMs;
            if (p.heartbeatMs !== undefined) watch.announced(p.heartbeatMs);
            if (!recovered && (p.data === true || Date.now() - openedAt >= this.policy.stableMs)) {
              recovered = true;
              attempt = 0;
            }
            yield message;
            watch.waiting();
          }
          if (watch.silenced !== undefined) throw watch.silenced;
          if (closingRetryAfterMs === undefined) return; // the server finished the stream: done
          error = new ConnectError("the server closed the stream", Code.Unavailable);
        } catch (e) {
          // The caller's abort is the main signal's; the watchdog aborts only this call's.
          if (signal.aborted) throw canceledBy(signal);
          error = watch.silenced ?? ConnectError.from(e);
          // After a Closing the server asked us to come back, whatever status followed it.
          if (closingRetryAfterMs === undefined && !isTransient(error)) throw error;
          if (!answered && this.options.retryFirstCall === false) throw error;
        } finally {
          watch.dispose();
        }
        if (!recovered && Date.now() - openedAt >= this.policy.stableMs) attempt = 0;
        attempt++;
        if (attempt > this.policy.maxAttempts) throw error;
        const delayMs = Math.max(closingRetryAfterMs ?? 0, backoffDelay(this.policy, attempt));
        this.options.onRetry?.({ attempt, delayMs, error, cursor: this.position, serverClosed: closingRetryAfterMs !== undefined });
        await sleep(delayMs, signal);
      }
    } finally {
      // Whatever ended the loop, no call may outlive it, and the caller's signal forgets us.
      this.controller.abort();
      this.detach();
    }
  }
}

/**
 * Abort `target` when `source` aborts (at once if it already has); returns
 * the function that undoes the link, so a finished call or stream leaves no
 * listener on a signal that outlives it.
 */
function linkAbort(source: AbortSignal | undefined, target: AbortController): () => void {
  if (source === undefined) return () => undefined;
  if (source.aborted) {
    target.abort(source.reason);
    return () => undefined;
  }
  const onAbort = (): void => target.abort(source.reason);
  source.addEventListener("abort", onAbort, { once: true });
  return () => source.removeEventListener("abort", onAbort);
}

/** Silence watchdogs alive now, process-wide: each call's, until the call ends. */
let liveWatches = 0;

/** How many calls' silence watchdogs are alive (their timer and signal link held): for tests and diagnostics. */
export function silenceWatchesLive(): number {
  return liveWatches;
}

/**
 * One call's silence watchdog. The call gets its own AbortController, linked
 * to the stream's, so that aborting it for silence is told apart from the
 * caller's abort. One cheap interval per call checks a timestamp set per
 * message (no timer re-armed per message); the time a message spends with
 * the reader (between `yield` and its next `next()`) does not count: a slow
 * reader is not a silent server.
 */
class SilenceWatch {
  private readonly controller = new AbortController();
  private readonly unlink: () => void;
  /** When the wait for the next message began; undefined while the reader holds a message. */
  private waitingSince: number | undefined = Date.now();
  private boundMs: number;
  private timer: ReturnType<typeof setInterval> | undefined;
  /** Set once the watchdog aborted the call. */
  silenced: ConnectError | undefined;
  private disposed = false;

  constructor(
    main: AbortSignal,
    private readonly explicitMs: number | undefined,
  ) {
    this.unlink = linkAbort(main, this.controller);
    liveWatches++;
    this.boundMs = explicitMs ?? SILENCE_BEFORE_ANNOUNCE_MS;
    this.arm();
  }

  /** The signal to open the call with. */
  get signal(): AbortSignal {
    return this.controller.signal;
  }

  /** A message arrived: the reader holds it now. */
  arrived(): void {
    this.waitingSince = undefined;
  }

  /** The reader asked for the next message: the wait starts now. */
  waiting(): void {
    this.waitingSince = Date.now();
  }

  /** The server announced its heartbeat interval (0: none announced). */
  announced(heartbeatMs: number): void {
    if (this.explicitMs !== undefined || heartbeatMs <= 0) return;
    const bound = silenceBound(heartbeatMs);
    if (bound === this.boundMs) return;
    this.boundMs = bound;
    this.arm();
  }

  /** The call is over: no timer and no listener outlive it. Idempotent. */
  dispose(): void {
    clearInterval(this.timer);
    this.timer = undefined;
    if (this.disposed) return;
    this.disposed = true;
    this.unlink();
    liveWatches--;
  }

  private arm(): void {
    clearInterval(this.timer);
    this.timer = undefined;
    // 0 (or anything not a positive finite number) turns the watchdog off.
    if (!(this.boundMs > 0 && Number.isFinite(this.boundMs)) || this.controller.signal.aborted) return;
    // Checked a few times per bound: the call is aborted between bound and 1.25 x bound of silence (at most bound + 1 s).
    const every = Math.max(10, Math.min(1_000, Math.floor(this.boundMs / 4)));
    const timer = setInterval(() => this.check(), every);
    // Do not keep a process alive for the watchdog alone (the call's own socket does that).
    const t: unknown = timer;
    if (typeof t === "object" && t !== null && "unref" in t && typeof t.unref === "function") t.unref();
    this.timer = timer;
  }

  private check(): void {
    if (this.waitingSince === undefined || this.controller.signal.aborted) return;
    if (Date.now() - this.waitingSince <= this.boundMs) return;
    this.silenced = new ConnectError(`no message from the server for ${this.boundMs} ms: connection presumed dead`, Code.Unavailable);
    clearInterval(this.timer);
    this.timer = undefined;
    this.controller.abort(this.silenced);
  }
}
