/**
 * The Bus interface: what the services and the stream core know about the
 * place events live. The memory bus (default) and later the Redis bus both
 * implement it; nothing above this file knows which one runs.
 */

/** One stored event, shared by every subscriber that receives it. Never mutated. */
export interface StoredEvent {
  readonly topic: string;
  /** Position in its topic, from 1, without holes. */
  readonly seq: bigint;
  /** Opaque; resumes right after this event. */
  readonly cursor: string;
  readonly data: Uint8Array;
  readonly headers: Readonly<Record<string, string>>;
  /** Milliseconds since the epoch when the bus accepted the event. */
  readonly timeMs: number;
  /** Approximate bytes this event occupies (payload, headers, topic); used by queue and retention bounds. */
  readonly size: number;
}

/** Where a subscription starts. */
export type StartPosition =
  | { readonly kind: "live" }
  | { readonly kind: "afterCursor"; readonly cursor: string }
  | { readonly kind: "fromSeq"; readonly seq: bigint }
  | { readonly kind: "last"; readonly count: number }
  | { readonly kind: "earliest" };

/** Why a Gap is reported; mirrors runnel.v1.GapReason without depending on generated code. */
export type GapCause = "trimmed" | "dropped" | "reset";

/** Events of one topic, fromSeq..toSeq inclusive, that a subscriber asked for but will not get. */
export interface GapNotice {
  readonly topic: string;
  readonly fromSeq: bigint;
  readonly toSeq: bigint;
  readonly cause: GapCause;
}

/**
 * Receives a subscription's deliveries, in order. The bus calls it
 * synchronously. During replay of history the bus sends only while
 * `wantsMore()` is true and continues when the subscriber calls
 * `BusSubscription.resume()`; live events are pushed as they are published and
 * the receiver's own bound decides what happens when it is full.
 */
export interface DeliverySink {
  event(event: StoredEvent): void;
  gap(gap: GapNotice): void;
  wantsMore(): boolean;
  /**
   * The bus can no longer serve this subscription (its backend failed for
   * good, or the sink itself threw). The subscription is already closed; the
   * stream ends with an error. Called at most once.
   */
  fail?(error: BusError): void;
}

/** A live subscription on the bus: a resource owned by exactly one stream scope. */
export interface BusSubscription {
  /**
   * A cursor equivalent to the start position: resuming after it delivers
   * what this subscription delivers first (for a live start, the head). Empty
   * only where no cursor can express the start (from_seq beyond the head).
   */
  readonly startCursor: string;
  /** Continue a replay that paused because the sink was full. Cheap no-op otherwise. */
  resume(): void;
  /** Stop deliveries and free everything. Idempotent. */
  close(): void;
}

/** Errors a bus raises for bad requests; services map `kind` to a status code. */
export class BusError extends Error {
  constructor(
    readonly kind: "invalid" | "unavailable" | "exhausted",
    message: string,
  ) {
    super(message);
    this.name = "BusError";
  }
}

/** The subscription request after validation by the service layer. */
export interface SubscribeSpec {
  /** Exact topic or pattern (validated). */
  readonly pattern: string;
  readonly start: StartPosition;
}

/** Counters a bus reports for metrics and tests. */
export interface BusStats {
  readonly subscriptionsActive: number;
  readonly topics: number;
  readonly retainedEvents: number;
  readonly retainedBytes: number;
}

/** One event to append. */
export interface PublishInput {
  readonly topic: string;
  readonly data: Uint8Array;
  readonly headers: Readonly<Record<string, string>>;
}

/** The event store and fan-out engine. */
export interface Bus {
  /** Append one event. Rejects with BusError("unavailable") when the backend is down. */
  publish(topic: string, data: Uint8Array, headers: Readonly<Record<string, string>>): Promise<StoredEvent>;
  /**
   * Append several events, in order, as one atomic step: all of them or none
   * (a BusError), with no other publish between them, so events of one topic
   * get consecutive seqs. Resolves with one StoredEvent per input, in order.
   */
  publishBatch(events: readonly PublishInput[]): Promise<StoredEvent[]>;
  /**
   * Start a subscription. Validates the start position against the bus state
   * and throws BusError("invalid") for unknown or malformed cursors, from_seq on a
   * pattern, and the like. Replay of history (if any) begins synchronously
   * into the sink; live events follow without loss or duplicates.
   */
  subscribe(spec: SubscribeSpec, sink: DeliverySink): BusSubscription;
  /** Cursor of the newest event in the bus (or of the empty beginning). */
  headCursor(): string;
  stats(): BusStats;
  /** Release everything; later calls fail. */
  close(): Promise<void>;
}
