/**
 * The two Redis connections of a node, and how they behave when Redis goes
 * away. A node holds exactly two, whatever its number of subscribers: one for
 * commands (publish, replay reads) and one for the reader's blocking XREAD.
 *
 * Outage policy: nothing queues while Redis is away (enableOfflineQueue off,
 * no retry of a command whose connection died, since a publish may or may not
 * have been applied), so callers fail fast with Unavailable; reconnects retry
 * for ever with capped exponential backoff, each attempt logged.
 */
import { createRequire } from "node:module";
import type { Redis, RedisOptions } from "ioredis";
import type { Logger } from "pino";

/**
 * ioredis, loaded on first use: every `runnel` command imports the server
 * module, and only `serve --bus redis://` needs the client (it costs client
 * commands a noticeable share of their start-up otherwise).
 */
function ioredis(): typeof import("ioredis") {
  return createRequire(import.meta.url)("ioredis") as typeof import("ioredis");
}

/** Connection counters for metrics. */
export interface ConnectionStats {
  /** Both connections are ready. */
  readonly connected: boolean;
  /** Successful reconnects since start (both connections). */
  readonly reconnects: number;
}

/** Longest wait between reconnect attempts. */
export const MAX_BACKOFF_MS = 2_000;

/** Delay before reconnect attempt `attempt` (1, 2, ...): 100 ms doubling, capped at MAX_BACKOFF_MS. */
export function backoffMs(attempt: number): number {
  return Math.min(MAX_BACKOFF_MS, 100 * 2 ** Math.min(attempt - 1, 10));
}

/** Parses `redis://HOST:PORT[/DB]` (or rediss://) into ioredis options; throws with a readable message. */
export function redisOptionsOf(url: string): RedisOptions {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new Error(`--bus ${url}: not a valid URL`);
  }
  if (u.protocol !== "redis:" && u.protocol !== "rediss:") throw new Error(`--bus ${url}: expected redis:// or rediss://`);
  const db = u.pathname === "" || u.pathname === "/" ? 0 : Number(u.pathname.slice(1));
  if (!Number.isSafeInteger(db) || db < 0) throw new Error(`--bus ${url}: the path must be a database number, like /0`);
  return {
    host: u.hostname === "" ? "127.0.0.1" : u.hostname.replace(/^\[|\]$/g, ""),
    port: u.port === "" ? 6379 : Number(u.port),
    db,
    ...(u.username !== "" ? { username: decodeURIComponent(u.username) } : {}),
    ...(u.password !== "" ? { password: decodeURIComponent(u.password) } : {}),
    ...(u.protocol === "rediss:" ? { tls: {} } : {}),
  };
}

/** The node's pair of connections. */
export class RedisConnections {
  readonly command: Redis;
  readonly reader: Redis;
  private reconnectCount = 0;

  constructor(url: string, log: Logger, commandTimeoutMs: number) {
    const base: RedisOptions = {
      ...redisOptionsOf(url),
      protocol: 2,
      enableOfflineQueue: false,
      autoResendUnfulfilledCommands: false,
      maxRetriesPerRequest: 0,
      lazyConnect: false,
      retryStrategy: (attempt: number) => {
        const delay = backoffMs(attempt);
        log.warn({ attempt, delayMs: delay }, "redis unreachable; reconnecting");
        return delay;
      },
    };
    const { Redis: Client } = ioredis();
    this.command = new Client({ ...base, connectionName: "runnel-command", commandTimeout: commandTimeoutMs });
    this.reader = new Client({ ...base, connectionName: "runnel-reader" });
    for (const [name, conn] of [["command", this.command], ["reader", this.reader]] as const) {
      let wasReady = false;
      let up = false;
      conn.on("ready", () => {
        if (wasReady) {
          this.reconnectCount++;
          log.info({ connection: name }, "redis connection restored");
        }
        wasReady = true;
        up = true;
      });
      conn.on("close", () => {
        if (up) log.warn({ connection: name }, "redis connection lost");
        up = false;
      });
      // ioredis emits every connection error; the retry strategy logs the attempts already.
      conn.on("error", (err: Error) => log.debug({ err, connection: name }, "redis connection error"));
    }
  }

  stats(): ConnectionStats {
    return { connected: this.command.status === "ready" && this.reader.status === "ready", reconnects: this.reconnectCount };
  }

  /** Resolves once `conn` is ready, or when it was closed for good. */
  static whenReady(conn: Redis): Promise<void> {
    if (conn.status === "ready" || conn.status === "end") return Promise.resolve();
    return new Promise((resolve) => {
      const done = (): void => {
        conn.off("ready", done);
        conn.off("end", done);
        resolve();
      };
      conn.on("ready", done);
      conn.on("end", done);
    });
  }

  /** Closes both connections; pending commands reject. */
  async close(): Promise<void> {
    // The reader is usually parked in XREAD BLOCK: a QUIT would wait behind it, so it is cut.
    this.reader.disconnect();
    await quit(this.command);
  }
}

async function quit(conn: Redis): Promise<void> {
  if (conn.status === "end") return;
  if (conn.status !== "ready") {
    conn.disconnect();
    return;
  }
  try {
    await conn.quit();
  } catch {
    conn.disconnect();
  }
}
