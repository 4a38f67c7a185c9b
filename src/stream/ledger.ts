/**
 * The ledger of live streams: the one source of truth that metrics,
 * AdminService and tests read. A stream is in the ledger from the moment its
 * handler starts until every resource it held has been released.
 */
import type { EndCause } from "./end-cause.js";

/** What the ledger knows of one live stream. */
export interface LedgerEntry {
  readonly id: string;
  /** Fully-qualified method, for example "runnel.v1.EventService/Subscribe". */
  readonly rpc: string;
  readonly topic: string;
  readonly path: string;
  readonly protocol: string;
  readonly peer: string;
  readonly startedMs: number;
  readonly eventsSent: number;
  readonly queued: number;
  readonly queuedBytes: number;
  /** 0 until the first message was handed to the transport. */
  readonly lastWriteMs: number;
  /** Keys this stream is counted under for limits (for example "peer:10.0.0.7"); fixed for its life. */
  readonly tally?: readonly string[];
  /** Resources this stream holds right now, by kind. */
  resources(): ReadonlyMap<string, number>;
  /** Milliseconds the current write has been waiting for the peer; 0 when none is pending. */
  writePendingMs(now: number): number;
  /** End the stream by the server's choice, with Closing when the transport can still carry it. */
  close(cause: ServerEndCause, message: string): void;
  /** End the stream at once, cutting the transport (the peer is not reading). */
  cut(cause: ServerEndCause, message: string): void;
}

/** The causes the server itself can choose. */
export type ServerEndCause = Extract<EndCause, "slow_consumer" | "shutdown" | "lifetime" | "admin" | "dead_peer" | "error">;

/** Observers of stream ends; the metrics module is one. Called on the release path: keep it cheap. */
export interface LedgerObserver {
  ended(rpc: string, cause: EndCause, releaseSeconds: number): void;
}

/** The registry of live streams. */
export class Ledger {
  private readonly entries = new Map<string, LedgerEntry>();
  private readonly observers: LedgerObserver[] = [];
  private readonly emptyWaiters = new Set<() => void>();
  private readonly endedCounts = new Map<string, number>();
  private readonly tallies = new Map<string, number>();
  private finallyCount = 0;
  /** Events handed to transports and events dropped (drop-oldest), since start; read by metrics at scrape time. */
  deliveredTotal = 0;
  droppedTotal = 0;

  private refusing = false;

  /** True once `refuseNew()` was called: streams opened from then on end at once (shutdown). */
  get isRefusing(): boolean {
    return this.refusing;
  }

  /** From now on, new streams end at once with cause shutdown (they never start). */
  refuseNew(): void {
    this.refusing = true;
  }

  /** Live streams right now. */
  get size(): number {
    return this.entries.size;
  }

  /** Count of stream bodies whose `finally` has run, since start (tests compare it with streams opened). */
  get finallyRan(): number {
    return this.finallyCount;
  }

  add(entry: LedgerEntry): void {
    this.entries.set(entry.id, entry);
    for (const key of entry.tally ?? []) this.tallies.set(key, (this.tallies.get(key) ?? 0) + 1);
  }

  /** Live streams counted under `key` (see LedgerEntry.tally): what stream limits compare against. */
  tallyOf(key: string): number {
    return this.tallies.get(key) ?? 0;
  }

  get(id: string): LedgerEntry | undefined {
    return this.entries.get(id);
  }

  list(): LedgerEntry[] {
    return [...this.entries.values()];
  }

  /** Live streams by rpc. */
  countByRpc(): Map<string, number> {
    const counts = new Map<string, number>();
    for (const e of this.entries.values()) counts.set(e.rpc, (counts.get(e.rpc) ?? 0) + 1);
    return counts;
  }

  /** Resources held by all live streams, by kind. */
  resourceTotals(): Map<string, number> {
    const totals = new Map<string, number>();
    for (const e of this.entries.values()) {
      for (const [kind, n] of e.resources()) totals.set(kind, (totals.get(kind) ?? 0) + n);
    }
    return totals;
  }

  /** Every (rpc, cause) with the number of streams that ended so, since start. */
  *endedTotals(): IterableIterator<[rpc: string, cause: EndCause, count: number]> {
    for (const [key, n] of this.endedCounts) {
      const slash = key.lastIndexOf("/");
      yield [key.slice(0, slash), key.slice(slash + 1) as EndCause, n];
    }
  }

  /** How many streams ended with each `rpc/cause`, since start. */
  endedCount(rpc: string, cause: EndCause): number {
    return this.endedCounts.get(`${rpc}/${cause}`) ?? 0;
  }

  observe(observer: LedgerObserver): void {
    this.observers.push(observer);
  }

  /** Called once by a stream when everything it held is released. */
  remove(entry: LedgerEntry, cause: EndCause, releaseSeconds: number): void {
    if (!this.entries.delete(entry.id)) return;
    for (const key of entry.tally ?? []) {
      const n = (this.tallies.get(key) ?? 1) - 1;
      if (n === 0) this.tallies.delete(key);
      else this.tallies.set(key, n);
    }
    const key = `${entry.rpc}/${cause}`;
    this.endedCounts.set(key, (this.endedCounts.get(key) ?? 0) + 1);
    for (const o of this.observers) o.ended(entry.rpc, cause, releaseSeconds);
    if (this.entries.size === 0) {
      for (const wake of this.emptyWaiters) wake();
      this.emptyWaiters.clear();
    }
  }

  /** Called by a stream body's `finally`. */
  noteFinally(): void {
    this.finallyCount++;
  }


  /** Resolves when no stream is live, or after `timeoutMs`; returns whether the ledger is empty. */
  whenEmpty(timeoutMs: number): Promise<boolean> {
    if (this.entries.size === 0) return Promise.resolve(true);
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        this.emptyWaiters.delete(done);
        resolve(this.entries.size === 0);
      };
      const timer = setTimeout(done, timeoutMs);
      this.emptyWaiters.add(done);
    });
  }
}
