/**
 * How a bus subscription calls its sink, shared by the memory and Redis
 * buses: a sink that throws never breaks the caller's fan-out; its
 * subscription is closed, the bus is told, and the sink hears once, through
 * its optional `fail`, so its stream ends instead of idling on heartbeats.
 */
import { BusError, type DeliverySink, type GapNotice, type StoredEvent } from "./bus.js";

/** Who hears about a sink that threw. */
export interface SinkErrorReporter {
  sinkFailed(error: unknown): void;
}

/** Base of bus subscriptions: the guarded sink calls and the one way a subscription fails. */
export abstract class SinkCalls {
  protected closed = false;

  protected constructor(
    protected readonly sink: DeliverySink,
    private readonly reporter: SinkErrorReporter,
  ) {}

  /** Stop deliveries and free everything. Idempotent. */
  abstract close(): void;

  protected wantsMore(): boolean {
    try {
      return this.sink.wantsMore();
    } catch (error) {
      this.sinkThrew(error);
      return false;
    }
  }

  protected send(event: StoredEvent): void {
    try {
      this.sink.event(event);
    } catch (error) {
      this.sinkThrew(error);
    }
  }

  protected sendGap(gap: GapNotice): void {
    try {
      this.sink.gap(gap);
    } catch (error) {
      this.sinkThrew(error);
    }
  }

  /** The sink threw: close, report it, and tell the sink (Unavailable). */
  private sinkThrew(error: unknown): void {
    if (this.closed) return;
    this.close();
    try {
      this.reporter.sinkFailed(error);
    } catch {
      // A failing error reporter must not break the publisher's fan-out either.
    }
    const detail = error instanceof Error ? error.message : String(error);
    this.tellSink(new BusError("unavailable", `bus subscription closed: its sink threw (${detail})`));
  }

  /** The bus cannot serve this subscription (a bad request found late, a backend failure): close, tell the sink why. */
  protected failWith(error: BusError): void {
    if (this.closed) return;
    this.close();
    this.tellSink(error);
  }

  /** The one call a sink gets after its subscription closed, and only when the bus closed it. */
  private tellSink(error: BusError): void {
    try {
      this.sink.fail?.(error);
    } catch {
      // Contained.
    }
  }
}
