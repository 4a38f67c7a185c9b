/**
 * A Subscribe call read in the background by a real connect-es client: every
 * message is recorded in order, the call's final status is kept, and the test
 * waits on what it expects to see (never on time). `cancel()` aborts the
 * call's signal, which is the only thing that cancels a connect-es stream.
 */
import { type Client, ConnectError, type Transport, createClient } from "@connectrpc/connect";
import type { MessageInitShape } from "@bufbuild/protobuf";
import {
  EventService,
  type Closing,
  type Event,
  type Gap,
  type Heartbeat,
  type Subscribed,
  type SubscribeRequestSchema,
  type SubscribeResponse,
} from "../../gen/runnel/v1/event_pb.js";
import { waitFor } from "./server.js";

export type SubscribeInit = MessageInitShape<typeof SubscribeRequestSchema>;

/** One background subscription. */
export class Subscriber {
  readonly messages: SubscribeResponse[] = [];
  /** The status the call ended with (undefined while it runs or when it ended without error). */
  error: ConnectError | undefined;
  ended = false;
  readonly done: Promise<void>;
  private readonly abort = new AbortController();

  constructor(client: Client<typeof EventService>, request: SubscribeInit, options: { timeoutMs?: number } = {}) {
    const stream = client.subscribe(request, { signal: this.abort.signal, ...(options.timeoutMs ? { timeoutMs: options.timeoutMs } : {}) });
    this.done = (async () => {
      try {
        for await (const m of stream) this.messages.push(m);
      } catch (e) {
        this.error = ConnectError.from(e);
      } finally {
        this.ended = true;
      }
    })();
  }

  /** Open a subscription on `transport`. */
  static open(transport: Transport, request: SubscribeInit, options: { timeoutMs?: number } = {}): Subscriber {
    return new Subscriber(createClient(EventService, transport), request, options);
  }

  get kinds(): (string | undefined)[] {
    return this.messages.map((m) => m.kind.case);
  }

  get subscribed(): Subscribed | undefined {
    const m = this.messages[0];
    return m?.kind.case === "subscribed" ? m.kind.value : undefined;
  }

  get events(): Event[] {
    return this.messages.flatMap((m) => (m.kind.case === "event" ? [m.kind.value] : []));
  }

  get gaps(): Gap[] {
    return this.messages.flatMap((m) => (m.kind.case === "gap" ? [m.kind.value] : []));
  }

  get heartbeats(): Heartbeat[] {
    return this.messages.flatMap((m) => (m.kind.case === "heartbeat" ? [m.kind.value] : []));
  }

  get closing(): Closing | undefined {
    const c = this.messages.find((m) => m.kind.case === "closing");
    return c?.kind.case === "closing" ? c.kind.value : undefined;
  }

  /** Data of every event as text. */
  get texts(): string[] {
    return this.events.map((e) => new TextDecoder().decode(e.data));
  }

  /** Seqs of every event as "topic#seq". */
  get positions(): string[] {
    return this.events.map((e) => `${e.topic}#${e.seq}`);
  }

  /** Wait for the Subscribed message (the subscription is registered on the bus once it is here). */
  async ready(timeoutMs = 10_000): Promise<Subscribed> {
    await this.until(() => this.messages.length > 0, timeoutMs, "Subscribed");
    const s = this.subscribed;
    if (s === undefined) throw new Error(`first message is ${this.messages[0]?.kind.case}, not subscribed`);
    return s;
  }

  /** Wait until `count` events arrived. */
  async eventCount(count: number, timeoutMs = 10_000): Promise<Event[]> {
    await this.until(() => this.events.length >= count, timeoutMs, `${count} events`);
    return this.events;
  }

  /** Wait for `check`; fails early (with the status) when the call ended first. */
  async until(check: () => boolean, timeoutMs = 10_000, what = "condition"): Promise<void> {
    await waitFor(
      () => {
        if (check()) return true;
        if (this.ended) throw new Error(`stream ended (${this.error?.message ?? "ok"}) before ${what}; got ${this.kinds.join(",")}`);
        return false;
      },
      timeoutMs,
      what,
    );
  }

  /** Wait for the call to end on its own (server closed it). */
  async finished(timeoutMs = 10_000): Promise<void> {
    await waitFor(() => this.ended, timeoutMs, "stream end");
  }

  /** Abort the call and wait until the client side has ended. */
  async cancel(): Promise<void> {
    this.abort.abort();
    await this.done;
  }
}
