/**
 * The soak's publisher: events round robin over the topics, sent with
 * PublishBatch (one call per 10 ms tick carries what the rate owes by then),
 * as a high-rate producer should publish. It remembers the last seq the
 * server acknowledged per topic: that is what every subscriber must reach.
 */
import { Code, ConnectError, createClient, type Client } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { EventService } from "../../gen/runnel/v1/event_pb.js";

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Events per PublishBatch call at most (the server's default --max-batch-events is 1,000). */
const MAX_BATCH = 500;
/** Calls in flight at most. */
const MAX_IN_FLIGHT = 16;

/** Publishes to `topics` on the server at `url`. */
export class SoakPublisher {
  /** Last acknowledged seq per topic. */
  readonly published = new Map<string, bigint>();
  /** Events acknowledged. */
  count = 0;
  /** Events in batches that failed (after retries). */
  failures = 0;
  /** Batches sent again after Unavailable (the connection was lost). */
  retries = 0;
  private next = 0;
  private readonly client: Client<typeof EventService>;
  private readonly inFlight = new Set<Promise<void>>();
  private running: Promise<void> | undefined;
  private stopping = false;

  constructor(
    url: string,
    private readonly topics: readonly string[],
  ) {
    this.client = createClient(EventService, createGrpcTransport({ baseUrl: url }));
  }

  /** Publish `perTopic` events to every topic as fast as the server takes them. */
  async prefill(perTopic: number): Promise<void> {
    let left = perTopic * this.topics.length;
    while (left > 0) {
      const n = Math.min(MAX_BATCH, left);
      left -= n;
      await this.room();
      this.send(n);
    }
    await Promise.all(this.inFlight);
  }

  /** Start publishing `perSecond` events per second until `stop()`. */
  start(perSecond: number): void {
    const from = Date.now();
    let owedFrom = 0;
    this.running = (async () => {
      while (!this.stopping) {
        // What the rate owes by now; a late tick is made up for by a bigger batch.
        const due = Math.floor((perSecond * (Date.now() - from)) / 1000);
        while (due - owedFrom > 0 && this.inFlight.size < MAX_IN_FLIGHT) {
          const n = Math.min(MAX_BATCH, due - owedFrom);
          owedFrom += n;
          this.send(n);
        }
        await sleep(10);
      }
      await Promise.all(this.inFlight);
    })();
  }

  /** Stop and wait for every call in flight. */
  async stop(): Promise<void> {
    this.stopping = true;
    await this.running;
  }

  private async room(): Promise<void> {
    while (this.inFlight.size >= MAX_IN_FLIGHT) await Promise.race(this.inFlight);
  }

  /** One PublishBatch of the next `n` events, retried (up to 3 times) when its connection was lost. */
  private send(n: number): void {
    const events: { topic: string; data: Uint8Array }[] = [];
    for (let i = 0; i < n; i++, this.next++) {
      events.push({ topic: this.topics[this.next % this.topics.length]!, data: new TextEncoder().encode(`e${this.next}`) });
    }
    const p = this.publish(events)
      .then(
        (results) => {
          this.count += results.length;
          results.forEach((r, i) => {
            const topic = events[i]!.topic;
            if (r.seq > (this.published.get(topic) ?? 0n)) this.published.set(topic, r.seq);
          });
        },
        () => void (this.failures += n),
      )
      .finally(() => this.inFlight.delete(p));
    this.inFlight.add(p);
  }

  private async publish(events: { topic: string; data: Uint8Array }[]) {
    for (let attempt = 0; ; attempt++) {
      try {
        return (await this.client.publishBatch({ events })).results;
      } catch (e) {
        if (attempt >= 3 || ConnectError.from(e).code !== Code.Unavailable) throw e;
        this.retries++;
        await sleep(100);
      }
    }
  }
}
