/**
 * The engine of the resumable client: one server stream after another, each
 * picking up at the last position the previous one reached, as one async
 * iterable. It exists because a connect-es stream alone neither resumes nor
 * cancels when its reader leaves the loop (`break`, `return`, an exception):
 * only aborting the call's signal does, so this iterator aborts its calls
 * whenever it is left, and whenever the caller's own AbortSignal fires.
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
}

/** What a resumable stream learns from one message. */
export interface Progress {
  /** The position to resume from after this message, when it carries one. */
  readonly cursor?: string;
  /** Data that moves the reader forward (an event, a line): the stream counts as recovered. */
  readonly data?: boolean;
  /** The server's Closing: it is ending the stream and asks to come back after this many ms. */
  readonly closingRetryAfterMs?: number;
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
    const outer = options.signal;
    if (outer === undefined) this.detach = () => undefined;
    else if (outer.aborted) {
      this.controller.abort(outer.reason);
      this.detach = () => undefined;
    } else {
      const onAbort = (): void => this.controller.abort(outer.reason);
      outer.addEventListener("abort", onAbort, { once: true });
      this.detach = () => outer.removeEventListener("abort", onAbort);
    }
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
        try {
          for await (const message of this.kind.open(this.position, signal)) {
            answered = true;
            const p = this.kind.progress(message, this.position);
            if (p.cursor !== undefined && p.cursor !== "") this.position = p.cursor;
            if (p.closingRetryAfterMs !== undefined) closingRetryAfterMs = p.closingRetryAfterMs;
            if (!recovered && (p.data === true || Date.now() - openedAt >= this.policy.stableMs)) {
              recovered = true;
              attempt = 0;
            }
            yield message;
          }
          if (closingRetryAfterMs === undefined) return; // the server finished the stream: done
          error = new ConnectError("the server closed the stream", Code.Unavailable);
        } catch (e) {
          if (signal.aborted) throw canceledBy(signal);
          error = ConnectError.from(e);
          // After a Closing the server asked us to come back, whatever status followed it.
          if (closingRetryAfterMs === undefined && !isTransient(error)) throw error;
          if (!answered && this.options.retryFirstCall === false) throw error;
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
