/**
 * A live server stream: the one place that ties a handler to its client's
 * lifetime. It owns the scope, the bounded queue, the heartbeat and the
 * ledger entry, and it is the only code that yields to connect-es. Handlers
 * only set up (take resources through `own`, push messages through
 * `deliver`) and never clean up: every way a stream can end converges on
 * `finish()`, which runs exactly once.
 */
import { Code, ConnectError, type HandlerContext } from "@connectrpc/connect";
import { randomBytes } from "node:crypto";
import { BoundedQueue, QUEUE_ENDED, type QueueBounds } from "./bounded-queue.js";
import { causeOfClientAbort, type EndCause } from "./end-cause.js";
import type { Ledger, LedgerEntry, ServerEndCause } from "./ledger.js";
import { Scope, type Held, type Releasable } from "./scope.js";
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

/** Per-stream settings. */
export interface StreamSettings {
  readonly rpc: string;
  readonly topic?: string;
  readonly path?: string;
  readonly queue: QueueBounds;
  readonly policy: SlowConsumerPolicy;
  /** In-band heartbeat interval; 0 disables. */
  readonly heartbeatMs: number;
  /** Longest life of the stream; 0 is unlimited. */
  readonly lifetimeMs: number;
  /** How long a Closing message may take to flush before the transport is cut. */
  readonly closeFlushMs: number;
  /** Suggested reconnect delay carried by Closing. */
  readonly retryAfterMs: number;
  /** The resume cursor before any event was sent, until the source refines it with `startAt`. */
  readonly initialCursor: string;
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

let counter = 0;
const idPrefix = randomBytes(3).toString("hex");

/** One live server stream. Create it with `openStream`. */
export class LiveStream<T> implements LedgerEntry {
  readonly id = `${idPrefix}-${(++counter).toString(36)}`;
  readonly rpc: string;
  readonly topic: string;
  readonly path: string;
  readonly protocol: string;
  readonly peer: string;
  readonly startedMs = Date.now();
  eventsSent = 0;
  lastWriteMs = 0;
  /** Aborted when the stream ends, whatever the cause: pass it to any await made during setup. */
  readonly signal: AbortSignal;

  private readonly scope = new Scope();
  private readonly queue: BoundedQueue<T>;
  private readonly transport: Transport;
  private readonly abortController = new AbortController();
  private readonly drops = new Map<string, { from: bigint; to: bigint }>();
  private resumeCursor: string;
  private endCause: EndCause | undefined;
  private endKnownAt = 0;
  private closing = false;
  /** Set when the stream must stop yielding at once (client gone, cut, failure). */
  private stopError: ConnectError | undefined;
  private flushTimer: NodeJS.Timeout | undefined;
  private finished = false;
  private started = false;
  private atYield = false;
  private writeSince = 0;
  private lastActivityMs = Date.now();
  private drainListener: (() => void) | undefined;
  private removeAbortListener: (() => void) | undefined;
  private generator: AsyncGenerator<T> | undefined;
  /** The call's deadline when the stream started (undefined: none), to classify client aborts near it. */
  private readonly deadlineMs: number | undefined;

  constructor(
    private readonly ctx: HandlerContext,
    private readonly ledger: Ledger,
    private readonly settings: StreamSettings,
    private readonly messages: StreamMessages<T>,
  ) {
    this.rpc = settings.rpc;
    this.topic = settings.topic ?? "";
    this.path = settings.path ?? "";
    this.transport = ctx.values.get(transportKey) ?? UNKNOWN_TRANSPORT;
    this.protocol = this.transport.protocol;
    this.peer = this.transport.peer;
    this.queue = new BoundedQueue<T>(settings.queue);
    this.resumeCursor = settings.initialCursor;
    this.signal = this.abortController.signal;
    this.deadlineMs = ctx.timeoutMs();
    ledger.add(this);
    if (ctx.signal.aborted) {
      this.onClientAbort();
    } else {
      // Not in the scope: a stream that is flushing its Closing must still hear its client leave.
      const onAbort = (): void => this.onClientAbort();
      ctx.signal.addEventListener("abort", onAbort, { once: true });
      this.removeAbortListener = () => ctx.signal.removeEventListener("abort", onAbort);
    }
    if (settings.heartbeatMs > 0) this.startHeartbeat(settings.heartbeatMs);
    if (settings.lifetimeMs > 0) {
      const t = setTimeout(() => this.close("lifetime", "stream reached the server's maximum lifetime"), settings.lifetimeMs);
      t.unref();
      this.scope.ownTimer(t);
    }
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
    return this.atYield && this.writeSince > 0 ? now - this.writeSince : 0;
  }

  /** Register a resource with this stream's scope; released exactly once when the stream ends. */
  own<R extends Releasable>(kind: string, resource: R): R {
    this.scope.own(kind, resource);
    return resource;
  }

  /** Register a resource and get a handle to release it early. */
  hold(kind: string, resource: Releasable): Held {
    return this.scope.own(kind, resource);
  }

  /** Called after the queue was drained by the transport, to let paused sources continue. */
  onDrain(listener: () => void): void {
    this.drainListener = listener;
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
      this.close("slow_consumer", `subscriber fell behind: more than ${this.settings.queue.maxItems} messages or ${this.settings.queue.maxBytes} bytes queued`);
      return;
    }
    let droppedCount = 0;
    const kept: T[] = []; // control messages (Subscribed, Gap) are never dropped
    const { maxItems, maxBytes } = this.settings.queue;
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
    this.ledger.dropped(this.rpc, droppedCount);
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
    this.queue.force(this.messages.closing(cause, this.resumeCursor, this.settings.retryAfterMs, message));
    this.queue.end(new ConnectError(message, CLOSE_CODE[cause]));
    this.flushTimer = setTimeout(() => this.cut(cause, message), this.settings.closeFlushMs);
    this.flushTimer.unref();
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
  attach(generator: AsyncGenerator<T>): void {
    this.generator = generator;
  }

  /** @internal the generator body. */
  async *run(setup: (stream: LiveStream<T>) => void | Promise<void>): AsyncGenerator<T> {
    this.started = true;
    try {
      if (this.stopError !== undefined) throw this.stopError;
      await setup(this);
      for (;;) {
        const taken = this.queue.take();
        const batch = taken instanceof Promise ? await taken : taken;
        if (batch === QUEUE_ENDED) return;
        this.drainListener?.();
        // Events dropped (drop-oldest) were queued after the previous batch and before this one.
        const drops = this.takeDrops();
        if (drops !== undefined) yield* this.yieldAll(drops);
        for (let i = 0; i < batch.length; i++) {
          yield* this.yieldOne(batch[i]!);
          if (this.stopError !== undefined) throw this.stopError;
          if (this.closing && this.queue.length > 0) break; // abandon the rest of the batch: Closing is next
        }
      }
    } catch (e) {
      if (!this.ended) {
        this.markEnd("error");
        this.releaseSources();
      }
      throw toConnectError(e);
    } finally {
      this.ledger.noteFinally();
      this.finish();
    }
  }

  private *yieldAll(messages: T[]): Generator<T, void, undefined> {
    for (const m of messages) yield* this.yieldOne(m);
  }

  // A sync generator delegated with yield*: the async generator parks exactly here.
  private *yieldOne(message: T): Generator<T, void, undefined> {
    const cursor = this.messages.cursorOf(message);
    if (cursor !== undefined) {
      this.resumeCursor = cursor;
      this.eventsSent++;
      this.ledger.delivered(this.rpc, 1);
    }
    const now = Date.now();
    this.writeSince = now;
    this.lastActivityMs = now;
    this.atYield = true;
    try {
      yield message;
    } finally {
      this.atYield = false;
      this.writeSince = 0;
      this.lastWriteMs = Date.now();
    }
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
    this.stop(toConnectError(this.ctx.signal.reason ?? new ConnectError("client went away", Code.Canceled)));
    this.unpark();
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
      this.ledger.noteFinally(); // the body never ran: its finally has nothing to do
      this.finish();
      void this.generator?.return(undefined);
      return;
    }
    if (this.atYield) {
      if (!this.transport.isClosed()) this.transport.destroy();
      this.generator?.return(undefined).catch(() => undefined);
    }
  }

  private markEnd(cause: EndCause): void {
    if (this.endCause !== undefined) return;
    this.endCause = cause;
    this.endKnownAt = performance.now();
    this.abortController.abort(cause);
  }

  /** Release every source (bus subscription, timers...). The ledger entry stays until `finish()`. */
  private releaseSources(): void {
    this.scope.releaseAll();
    this.drainListener = undefined;
  }

  private finish(): void {
    if (this.finished) return;
    this.finished = true;
    if (this.endCause === undefined) this.markEnd("completed");
    this.scope.releaseAll();
    if (this.flushTimer !== undefined) clearTimeout(this.flushTimer);
    this.removeAbortListener?.();
    this.queue.clear();
    this.queue.end();
    const seconds = (performance.now() - this.endKnownAt) / 1000;
    this.ledger.remove(this, this.endCause!, seconds);
  }

  private noteDrop(key: string, seq: bigint): void {
    const d = this.drops.get(key);
    if (d === undefined) this.drops.set(key, { from: seq, to: seq });
    else {
      if (seq < d.from) d.from = seq;
      if (seq > d.to) d.to = seq;
    }
  }

  private takeDrops(): T[] | undefined {
    if (this.drops.size === 0) return undefined;
    const out: T[] = [];
    for (const [key, d] of this.drops) out.push(this.messages.dropped(key, d.from, d.to));
    this.drops.clear();
    return out;
  }

  private startHeartbeat(intervalMs: number): void {
    let timer: NodeJS.Timeout;
    const tick = (): void => {
      if (this.ended) return;
      const idle = Date.now() - this.lastActivityMs;
      if (idle >= intervalMs - 1 && this.queue.length === 0 && !this.atYield) {
        this.queue.force(this.messages.heartbeat(this.resumeCursor));
        this.lastActivityMs = Date.now();
        timer = setTimeout(tick, intervalMs);
      } else {
        timer = setTimeout(tick, Math.max(1, intervalMs - idle));
      }
      timer.unref();
    };
    timer = setTimeout(tick, intervalMs);
    timer.unref();
    this.scope.own("timer", { close: () => clearTimeout(timer) });
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
