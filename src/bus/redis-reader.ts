/**
 * The one reader loop of a node: a blocking XREAD on the firehose, on its own
 * connection, handing each event to the bus for in-memory fan-out. It checks
 * continuity (every firehose entry carries the count of events ever
 * published) and the dataset epoch on every (re)connect, and tells the bus to
 * resynchronise its subscriptions from history when either shows that it
 * missed something: `gap` (firehose trimmed past the reader) or `reset` (Redis
 * came back without its data).
 */
import { randomBytes } from "node:crypto";
import type { Logger } from "pino";
import { backoffMs, RedisConnections } from "./redis-connections.js";
import { entryOf, type RawEntry, type RedisEntry } from "./redis-entries.js";
import { idOf, ZERO_ID, type StreamId } from "./redis-ids.js";
import type { RedisKeys, ScriptedRedis } from "./redis-scripts.js";

/** What the reader feeds. */
export interface ReaderHost {
  dispatch(entry: RedisEntry): void;
  resync(reason: "gap" | "reset"): void;
}

/** Entries per XREAD, and how long one XREAD blocks. */
const READ_COUNT = "1000";
const BLOCK_MS = "5000";

/** The firehose follower of one node. */
export class FirehoseReader {
  /** Id of the last event dispatched: every later event will be dispatched. */
  position: StreamId = ZERO_ID;
  /** Epoch of the dataset ("" until first reached). */
  epoch = "";
  /** Milliseconds between the last dispatched event's append and its dispatch; 0 once a read found nothing new. */
  lagMs = 0;
  private lastCount: number | undefined;
  private stopped = false;
  private initialized = false;
  private markReady!: () => void;
  /** Resolves when the reader first reached Redis. */
  readonly ready = new Promise<void>((resolve) => (this.markReady = resolve));

  constructor(
    private readonly redis: ScriptedRedis,
    private readonly keys: RedisKeys,
    private readonly host: ReaderHost,
    private readonly log: Logger,
  ) {}

  start(): void {
    void this.loop();
  }

  stop(): void {
    this.stopped = true;
  }

  private async loop(): Promise<void> {
    let failures = 0;
    while (!this.stopped) {
      try {
        if (!this.initialized) await this.init();
        const reply = (await this.redis.callBuffer("XREAD", [
          "COUNT", READ_COUNT, "BLOCK", BLOCK_MS, "STREAMS", this.keys.firehose, this.position.text,
        ])) as [Buffer, RawEntry[]][] | null;
        failures = 0;
        if (reply === null) this.lagMs = 0; // a whole BLOCK period with nothing new: caught up
        else if (!this.stopped) this.take(reply[0]![1]);
      } catch (err) {
        if (this.stopped) break;
        this.initialized = false;
        failures++;
        this.log.warn({ err: (err as Error).message, failures }, "redis bus reader: read failed; retrying");
        await RedisConnections.whenReady(this.redis);
        await new Promise((r) => setTimeout(r, backoffMs(failures)));
      }
    }
  }

  private async init(): Promise<void> {
    await this.redis.set(this.keys.epoch, randomBytes(6).toString("hex"), "NX");
    const [epoch, last, count] = await this.redis.runnelSnapshot(this.keys.epoch, this.keys.count, this.keys.firehose);
    const now = epoch ?? "";
    if (this.epoch === "") {
      this.position = idOf(last);
      this.lastCount = Number(count);
      this.epoch = now;
      this.markReady();
    } else if (now !== this.epoch) {
      this.log.warn({ was: this.epoch, now }, "redis bus: the dataset was replaced (Redis lost its data); subscriptions get a RESET gap");
      this.epoch = now;
      this.position = ZERO_ID;
      this.lastCount = 0;
      this.host.resync("reset");
    }
    this.initialized = true;
  }

  private take(raws: RawEntry[]): void {
    for (const raw of raws) {
      const entry = entryOf(raw, this.epoch);
      if (this.lastCount !== undefined && entry.n !== this.lastCount + 1) {
        this.log.warn({ expected: this.lastCount + 1, got: entry.n }, "redis bus reader fell behind the firehose; replaying from topic history");
        this.host.resync("gap");
      }
      this.lastCount = entry.n;
      this.position = entry.id;
      this.lagMs = Math.max(0, Date.now() - entry.id.ms);
      this.host.dispatch(entry);
    }
  }
}
