/**
 * A live server stream: the one place that ties a handler to its client's
 * lifetime. It owns two scopes (its source side, released the moment its end
 * is known; its exchange with the client, released when it leaves the
 * ledger), the bounded queue, the heartbeat and the ledger entry, and it is the only code that yields to connect-es. Handlers
 * only set up (take resources through `own`, push messages through
 * `deliver`) and never clean up: every way a stream can end converges on
 * `finish()`, which runs exactly once.
 */
import { Code, ConnectError, type HandlerContext } from "@connectrpc/connect";
import { randomBytes } from "node:crypto";
import { BoundedQueue, QUEUE_ENDED, type QueueBounds } from "./bounded-queue.js";
import { causeOfClientAbort, type EndCause } from "./end-cause.js";
import type { Ledger, LedgerEntry, ServerEndCause } from "./ledger.js";
import { heartbeats, type Beating } from "./heartbeat-wheel.js";
import { Scope, type Releasable } from "./scope.js";
import { transportKey, type Transport } from "./transport.js";

/** What a slow consumer costs: the stream ends (disconnect) or loses its oldest queued events (drop-oldest). */
export type SlowConsumerPolicy = "disconnect" | "drop-oldest";

/** How a stream's own messages are made; each service supplies one. */
export interface StreamMessages<T> {
  heartbeat(resumeCursor: string): T;
  closing(cause: ServerEndCause, resumeCursor: string, retryAfterMs: number, message: string): T;
  /** The resume cursor a message carries when it is an event (it moves the stream's position), else undefined. */
  cursorOf(message: T): string | undefined;
  /** For drop-oldest: the key (topic) and seq of a droppable event, or undefined for messages that must not be dropped. */
  dropKey(message: T): { key: string; seq: bigint } | undefined;
  /** For drop-oldest: the message that reports dropped events key[from..to]. */
  dropped(key: string, fromSeq: bigint, toSeq: bigint): T;
}

/** Bounds shared by every stream of a service (one object, not one per stream). */
export interface StreamLimits {
  readonly queue: QueueBounds;
  /** Longest life of a stream; 0 is unlimited. */
  readonly lifetimeMs: number;
  /** How long a Closing message may take to flush before the transport is cut. */
  readonly closeFlushMs: number;
  /** Suggested reconnect delay carried by Closing. */
  readonly retryAfterMs: number;
}

/** Per-stream settings. */
export interface StreamSettings {
  readonly rpc: string;
  readonly topic?: string;
  readonly path?: string;
  /** Keys the ledger counts this stream under, for limits (peer, principal, pattern, tailed file). */
  readonly tally?: readonly string[];
  readonly limits: StreamLimits;
  readonly policy: SlowConsumerPolicy;
  /** In-band heartbeat interval; 0 disables. */
  readonly heartbeatMs: number;
}

/**
 * How a framed stream (see `openFramedStream`) turns messages into wire bytes:
 * one frame per message (shared bytes are welcome: the stream never mutates
 * them) and, when the stream ends by itself, the protocol's last frame.
 */
export interface FramedOutput<T> {
  frame(message: T): Uint8Array;
  /** The stream ended while its client is still there: the end-of-stream frame for `error` (undefined: OK), or undefined when the protocol ends in trailers. */
  end(error: ConnectError | undefined): Uint8Array | undefined;
}

/** Status codes a server-chosen end reports. */
const CLOSE_CODE: Record<ServerEndCause, Code> = {
  slow_consumer: Code.ResourceExhausted,
  shutdown: Code.Unavailable,
  lifetime: Code.Unavailable,
  admin: Code.Unavailable,
  dead_peer: Code.Unavailable,
  error: Code.Internal,
};

const UNKNOWN_TRANSPORT: Transport = {
  protocol: "unknown",
  peer: "unknown",
  peerDead: () => false,
  destroy: () => undefined,
  isClosed: () => false,
};

/** Why a stream stopped when its client left without saying why (HTTP/1.1 has no cancel): one shared error. */
const CLIENT_GONE = new ConnectError("client went away", Code.Canceled);

/** End causes after which the exchange is gone: no end frame or trailers can reach the client. */
const CLIENT_LEFT: ReadonlySet<EndCause> = new Set(["canceled", "disconnect", "dead_peer"]);

/** The answer to a stream opened while the server shuts down. */
const SHUTTING_DOWN = new ConnectError("server is shutting down", Code.Unavailable);

/** The request signal's abort listener, as a resource of the stream's exchange scope. */
class AbortListening implements Releasable {
  constructor(
    private readonly signal: AbortSignal,
    private readonly listener: Parameters<AbortSignal["addEventListener"]>[1],
  ) {
    signal.addEventListener("abort", listener, { once: true });
  }

  close(): void {
    this.signal.removeEventListener("abort", this.listener);
  }
}

let counter = 0;
const idPrefix = randomBytes(3).toString("hex");

/** One live server stream. Create it with `openStream`. */
export class LiveStream<T> implements LedgerEntry, Beating {
  readonly id = `${idPrefix}-${(++counter).toString(36)}`;
  readonly startedMs = Date.now();
  eventsSent = 0;

  /** What the stream's source side holds (bus subscription, heartbeat, lifetime timer): released as soon as its end is known. */
  private readonly scope = new Scope();
  /** What the exchange with the client holds until the stream leaves the ledger (abort listener, Closing flush timer). */
  private readonly exchange = new Scope();
  private readonly queue: BoundedQueue<T>;
  private readonly transport: Transport;
  // Created only when someone asks for `signal` (most streams never do).
  private abortController: AbortController | undefined;
  private drops: Map<string, { from: bigint; to: bigint }> | undefined;
  /** Set by the source with `startAt`, then by every event sent. */
  private resumeCursor = "";
  private endCause: EndCause | undefined;
  private endKnownAt = 0;
  private closing = false;
  /** Set when the stream must stop yielding at once (client gone, cut, failure). */
  private stopError: ConnectError | undefined;
  private finished = false;
  private started = false;
  private atYield = false;
  /** When the last message was handed to connect-es (0: none yet); a write is pending since then while `atYield`. */
  private lastYieldMs = 0;
  private drainListener: { resume(): void } | undefined;
  private finallyNoted = false;
  private generator: AsyncGenerator<T> | AsyncGenerator<Uint8Array> | undefined;
  /** The call's deadline when the stream started (undefined: none), to classify client aborts near it. */
  private readonly deadlineMs: number | undefined;

  constructor(
    private readonly ctx: HandlerContext,
    private readonly ledger: Ledger,
    private readonly settings: StreamSettings,
    private readonly messages: StreamMessages<T>,
  ) {
    this.transport = ctx.values.get(transportKey) ?? UNKNOWN_TRANSPORT;
    this.queue = new BoundedQueue<T>(settings.limits.queue);
    this.deadlineMs = ctx.timeoutMs();
    ledger.add(this);
    if (ledger.isRefusing) {
      // Opened while the server shuts down: end before anything is sent (no Subscribed, no Closing).
      this.markEnd("shutdown");
      this.stop(SHUTTING_DOWN);
    } else if (ctx.signal.aborted) {
      this.onClientAbort();
    } else {
      // In the exchange scope: a stream that is flushing its Closing must still hear its client leave.
      // The stream itself is the listener (handleEvent): no closure per stream.
      this.exchange.own("abort_listener", new AbortListening(ctx.signal, this));
    }
    if (settings.heartbeatMs > 0) this.scope.own("heartbeat", heartbeats.add(settings.heartbeatMs, this));
    const lifetimeMs = settings.limits.lifetimeMs;
    if (lifetimeMs > 0) {
      const t = setTimeout(() => this.close("lifetime", "stream reached the server's maximum lifetime"), lifetimeMs);
      t.unref();
      this.scope.ownTimer(t);
    }
  }

  get rpc(): string {
    return this.settings.rpc;
  }

  get topic(): string {
    return this.settings.topic ?? "";
  }

  get tally(): readonly string[] | undefined {
    return this.settings.tally;
  }

  get path(): string {
    return this.settings.path ?? "";
  }

  /** Wire protocol and HTTP version, for example "grpc h2". */
  get protocol(): string {
    return this.transport.protocol;
  }

  /** "address:port" of the client. */
  get peer(): string {
    return this.transport.peer;
  }

  /** Aborted when the stream ends, whatever the cause: pass it to any await made during setup. */
  get signal(): AbortSignal {
    if (this.abortController === undefined) {
      this.abortController = new AbortController();
      if (this.endCause !== undefined) this.abortController.abort(this.endCause);
    }
    return this.abortController.signal;
  }

  /** @internal the request signal's abort listener. */
  handleEvent(): void {
    this.onClientAbort();
  }

  /** @internal asked by the heartbeat wheel: send a heartbeat when nothing was written for an interval. */
  beat(nowMs: number): void {
    // A message waiting or being written counts as activity; so does one written within the interval.
    if (this.endCause !== undefined || this.atYield || this.queue.length > 0) return;
    if (nowMs - (this.lastYieldMs || this.startedMs) < this.settings.heartbeatMs - 1) return;
    this.queue.force(this.messages.heartbeat(this.resumeCursor));
  }

  /** When the last message was handed to the transport; 0 before the first. */
  get lastWriteMs(): number {
    return this.lastYieldMs;
  }

  get queued(): number {
    return this.queue.length;
  }

  get queuedBytes(): number {
    return this.queue.queuedBytes;
  }

  /** The cursor a client would resume from right now. */
  get cursor(): string {
    return this.resumeCursor;
  }

  /** Set where the stream starts, once its source knows; ignored once an event was sent. */
  startAt(cursor: string): void {
    if (this.eventsSent === 0) this.resumeCursor = cursor;
  }

  /** True once the stream's end is known (resources are released or being released). */
  get ended(): boolean {
    return this.endCause !== undefined;
  }

  resources(): ReadonlyMap<string, number> {
    return this.scope.resources();
  }

  writePendingMs(now: number): number {
    return this.atYield ? now - this.lastYieldMs : 0;
  }

  /** Register a resource with this stream's scope; released exactly once when the stream ends. */
  own<R extends Releasable>(kind: string, resource: R): R {
    this.scope.own(kind, resource);
    return resource;
  }

  /** A source paused by a full queue (a replaying bus subscription): resumed each time the transport drains the queue. */
  onDrain(source: { resume(): void }): void {
    this.drainListener = source;
  }

  /** Whether one more message of `size` bytes fits in the queue. */
  hasRoom(size = 0): boolean {
    return !this.ended && this.queue.fits(size);
  }

  /** Queue a control message (Subscribed, Gap...) regardless of the bound. */
  send(message: T): void {
    this.queue.force(message);
  }

  /**
   * Queue an event within the bound. When it does not fit, the slow-consumer
   * policy decides: end the stream with Closing, or drop the oldest queued
   * events (reported with a `dropped` message before the next event sent).
   */
  deliver(message: T, size: number): void {
    if (this.queue.offer(message, size)) return;
    if (this.ended) return;
    if (this.settings.policy === "disconnect" || this.messages.dropKey(message) === undefined) {
      const q = this.settings.limits.queue;
      this.close("slow_consumer", `subscriber fell behind: more than ${q.maxItems} messages or ${q.maxBytes} bytes queued`);
      return;
    }
    let droppedCount = 0;
    const kept: T[] = []; // control messages (Subscribed, Gap) are never dropped
    const { maxItems, maxBytes } = this.settings.limits.queue;
    const fitsWithKept = (): boolean => this.queue.length + kept.length < maxItems && this.queue.queuedBytes + size <= maxBytes;
    while (!fitsWithKept() && this.queue.length > 0) {
      const old = this.queue.shift() as T;
      const key = this.messages.dropKey(old);
      if (key === undefined) {
        kept.push(old);
        continue;
      }
      this.noteDrop(key.key, key.seq);
      droppedCount++;
    }
    for (let i = kept.length - 1; i >= 0; i--) this.queue.pushFront(kept[i]!);
    if (!this.queue.offer(message, size)) {
      const key = this.messages.dropKey(message)!;
      this.noteDrop(key.key, key.seq);
      droppedCount++;
    }
    this.ledger.droppedTotal += droppedCount;
  }

  /** End normally once everything queued has been sent (for finite streams). */
  complete(): void {
    if (this.ended) return;
    this.markEnd("completed");
    this.releaseSources();
    this.queue.end();
  }

  /** End with an error status (cause "error"), without a Closing message. */
  fail(error: unknown): void {
    if (this.ended) return;
    this.markEnd("error");
    this.stop(toConnectError(error));
  }

  /**
   * End by the server's choice: release every source now, send Closing with
   * the resume cursor, then end with the cause's status code. If the peer does
   * not take the Closing within the flush bound, the transport is cut.
   */
  close(cause: ServerEndCause, message: string): void {
    if (this.ended) return;
    this.markEnd(cause);
    this.closing = true;
    this.releaseSources();
    this.queue.clear();
    this.queue.force(this.messages.closing(cause, this.resumeCursor, this.settings.limits.retryAfterMs, message));
    this.queue.end(new ConnectError(message, CLOSE_CODE[cause]));
    const flush = setTimeout(() => this.cut(cause, message), this.settings.limits.closeFlushMs);
    flush.unref();
    this.exchange.ownTimer(flush);
  }

  /** End at once and cut the transport: for a peer that is not reading. */
  cut(cause: ServerEndCause, message: string): void {
    if (this.finished) return;
    if (!this.ended) this.markEnd(cause);
    this.stop(new ConnectError(message, CLOSE_CODE[cause]));
    this.transport.destroy();
    this.unpark();
  }

  /** @internal wire the generator connect-es drives; see openStream. */
  attach(generator: AsyncGenerator<T> | AsyncGenerator<Uint8Array>): void {
    this.generator = generator;
  }

  /** @internal the generator body. */
  async *run(setup: (stream: LiveStream<T>) => void | Promise<void>): AsyncGenerator<T> {
    try {
      await this.begin(setup);
      for (;;) {
        const batch = this.takeBatch();
        if (batch === undefined) {
          await this.queue.wait();
          continue;
        }
        if (batch === QUEUE_ENDED) return;
        // Events dropped (drop-oldest) were queued after the previous batch and before this one.
        const drops = this.takeDrops();
        if (drops !== undefined) {
          for (const message of drops) {
            this.beforeYield(message);
            yield message;
            this.atYield = false;
          }
        }
        for (let i = 0; i < batch.length; i++) {
          const message = batch[i]!;
          this.beforeYield(message);
          yield message;
          this.atYield = false;
          if (this.stopError !== undefined) throw this.stopError;
          if (this.closing && this.queue.length > 0) break; // abandon the rest of the batch: Closing is next
        }
      }
    } catch (e) {
      throw this.failed(e);
    } finally {
      this.bodyDone();
    }
  }

  /**
   * @internal the framed generator body (see `openFramedStream`): one chunk per
   * batch, the frames of every message queued since the last write joined
   * into one buffer, so a stream that fell behind catches up in a few writes
   * and an event costs no promise of its own. When the stream ends while its
   * client is still there (anything but cancel, disconnect, dead peer), the
   * protocol's last frame follows and the generator returns (it never throws:
   * the end is in the bytes or trailers).
   */
  async *runFrames(
    setup: (stream: LiveStream<T>) => void | Promise<void>,
    output: FramedOutput<T>,
  ): AsyncGenerator<Uint8Array> {
    let endError: ConnectError | undefined;
    try {
      await this.begin(setup);
      for (;;) {
        const batch = this.takeBatch();
        if (batch === undefined) {
          await this.queue.wait();
          continue;
        }
        if (batch === QUEUE_ENDED) break;
        const chunk = this.frameBatch(batch, output);
        this.lastYieldMs = Date.now();
        this.atYield = true;
        yield chunk;
        this.atYield = false;
        if (this.stopError !== undefined) throw this.stopError;
      }
    } catch (e) {
      endError = this.failed(e);
    } finally {
      this.bodyDone();
    }
    // A client that left gets nothing more; one whose deadline passed is still there and gets the status.
    if (this.transport.isClosed() || (this.endCause !== undefined && CLIENT_LEFT.has(this.endCause))) return;
    const last = output.end(endError);
    if (last !== undefined) yield last;
  }

  /** Everything queued, taken at once (a paused source may go on), QUEUE_ENDED, or undefined when empty. */
  private takeBatch(): T[] | typeof QUEUE_ENDED | undefined {
    const batch = this.queue.takeNow();
    if (batch !== undefined && batch !== QUEUE_ENDED) this.drainListener?.resume();
    return batch;
  }

  /** A generator body failed: a stream not ended yet ends with cause "error"; the error the client sees. */
  private failed(e: unknown): ConnectError {
    if (!this.ended) {
      this.markEnd("error");
      this.releaseSources();
    }
    return toConnectError(e);
  }

  /** A generator body's finally. */
  private bodyDone(): void {
    this.noteFinally();
    this.finish();
  }

  /** The start of a generator body: nothing to set up for a stream that already ended. */
  private async begin(setup: (stream: LiveStream<T>) => void | Promise<void>): Promise<void> {
    this.started = true;
    if (this.stopError !== undefined) throw this.stopError;
    await setup(this);
  }

  /** The frames of a batch (drop reports first), joined; the stream's position and counters move as for `run`. */
  private frameBatch(batch: readonly T[], output: FramedOutput<T>): Uint8Array {
    const drops = this.takeDrops();
    if (drops === undefined && batch.length === 1) {
      this.account(batch[0]!);
      return output.frame(batch[0]!);
    }
    const frames: Uint8Array[] = [];
    let length = 0;
    const add = (message: T): void => {
      this.account(message);
      const frame = output.frame(message);
      frames.push(frame);
      length += frame.length;
    };
    if (drops !== undefined) for (const message of drops) add(message);
    for (const message of batch) add(message);
    return Buffer.concat(frames, length);
  }

  /** A message is handed to the transport: an event moves the resume cursor and the counters. */
  private account(message: T): void {
    const cursor = this.messages.cursorOf(message);
    if (cursor !== undefined) {
      this.resumeCursor = cursor;
      this.eventsSent++;
      this.ledger.deliveredTotal++;
    }
  }

  /**
   * Bookkeeping before a message is handed to connect-es: the stream's
   * position, counters, and the mark that a write is pending (the generator
   * parks at the `yield` that follows until the transport takes the message).
   * Inline `yield`s, not a delegated sync generator: `yield*` of a sync
   * iterator inside an async generator costs extra promises per message.
   */
  private beforeYield(message: T): void {
    this.account(message);
    this.lastYieldMs = Date.now();
    this.atYield = true;
  }

  private onClientAbort(): void {
    if (this.ended) {
      this.unpark();
      return;
    }
    this.markEnd(
      causeOfClientAbort(this.ctx.signal.reason, {
        peerDead: this.transport.peerDead(),
        connectionLost: this.transport.connectionLost?.() ?? false,
        deadlineMs: this.deadlineMs,
        remainingMs: this.ctx.timeoutMs(),
      }),
    );
    const reason: unknown = this.ctx.signal.reason;
    this.stop(reason instanceof ConnectError ? reason : CLIENT_GONE);
    this.unpark();
    // The client is gone and stop() released everything the stream held: it leaves the ledger
    // now, not a few microtasks later when its generator's finally runs (that still happens).
    this.finish();
  }

  /** Stop yielding at once: release sources, drop what is queued, wake the reader with `error`. */
  private stop(error: ConnectError): void {
    this.stopError ??= error;
    this.releaseSources();
    this.queue.clear();
    this.queue.end(this.stopError);
  }

  /**
   * A generator parked at `yield` with nobody reading never reaches `finally`
   * by itself; return() it so the stream's body finishes now. A generator
   * that never started has no body to finish.
   */
  private unpark(): void {
    if (!this.started) {
      this.noteFinally(); // the body never ran: its finally has nothing to do
      this.finish();
      void this.generator?.return(undefined);
      return;
    }
    if (this.atYield) {
      if (!this.transport.isClosed()) this.transport.destroy();
      this.generator?.return(undefined).catch(() => undefined);
    }
  }

  /** Count this stream's `finally` once, whether its body ran or it ended before it started. */
  private noteFinally(): void {
    if (this.finallyNoted) return;
    this.finallyNoted = true;
    this.ledger.noteFinally();
  }

  private markEnd(cause: EndCause): void {
    if (this.endCause !== undefined) return;
    this.endCause = cause;
    this.endKnownAt = performance.now();
    this.abortController?.abort(cause);
  }

  /** Release every source (bus subscription, timers...). The ledger entry stays until `finish()`. */
  private releaseSources(): void {
    this.scope.releaseAll();
    this.drainListener = undefined;
  }

  private finish(): void {
    if (this.finished) return;
    this.finished = true;
    this.atYield = false; // a generator return()ed at its yield never ran afterYield
    if (this.endCause === undefined) this.markEnd("completed");
    this.scope.releaseAll();
    this.exchange.releaseAll();
    this.queue.clear();
    this.queue.end();
    const seconds = (performance.now() - this.endKnownAt) / 1000;
    this.ledger.remove(this, this.endCause!, seconds);
  }

  private noteDrop(key: string, seq: bigint): void {
    const drops = (this.drops ??= new Map());
    const d = drops.get(key);
    if (d === undefined) drops.set(key, { from: seq, to: seq });
    else {
      if (seq < d.from) d.from = seq;
      if (seq > d.to) d.to = seq;
    }
  }

  private takeDrops(): T[] | undefined {
    const drops = this.drops;
    if (drops === undefined || drops.size === 0) return undefined;
    const out: T[] = [];
    for (const [key, d] of drops) out.push(this.messages.dropped(key, d.from, d.to));
    drops.clear();
    return out;
  }
}

/** Map anything thrown inside a stream to the ConnectError the client sees. */
export function toConnectError(e: unknown): ConnectError {
  if (e instanceof ConnectError) return e;
  return ConnectError.from(e, Code.Internal);
}

/**
 * Open a server stream for a Connect handler: returns the async generator to
 * hand to connect-es. `setup` validates the request and takes resources;
 * then the stream yields whatever is delivered until it ends.
 */
export function openStream<T>(
  ctx: HandlerContext,
  ledger: Ledger,
  settings: StreamSettings,
  messages: StreamMessages<T>,
  setup: (stream: LiveStream<T>) => void | Promise<void>,
): AsyncGenerator<T> {
  const stream = new LiveStream<T>(ctx, ledger, settings, messages);
  const generator = stream.run(setup);
  stream.attach(generator);
  return generator;
}

/**
 * Open a server stream that produces wire bytes instead of messages: the
 * lean write path. The caller (a protocol handler in front of connect-es)
 * writes each chunk as it comes; `output` frames messages (encode once,
 * share the bytes) and supplies the protocol's last frame. Same lifecycle,
 * ledger and end causes as `openStream`.
 */
export function openFramedStream<T>(
  ctx: HandlerContext,
  ledger: Ledger,
  settings: StreamSettings,
  messages: StreamMessages<T>,
  setup: (stream: LiveStream<T>) => void | Promise<void>,
  output: FramedOutput<T>,
): AsyncGenerator<Uint8Array> {
  const stream = new LiveStream<T>(ctx, ledger, settings, messages);
  const generator = stream.runFrames(setup, output);
  stream.attach(generator);
  return generator;
}
