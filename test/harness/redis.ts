/**
 * A real redis-server for tests: started on a free loopback port with no
 * persistence (or with an append-only file, for restarts that keep data),
 * killed with SIGKILL and restarted on the same port for outage tests, and
 * stopped afterwards. When redis-server is not installed the Redis tests are
 * skipped with a message saying how to enable them; under CI=true they fail
 * instead, so CI never passes by skipping.
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Redis } from "ioredis";
import { describe } from "vitest";
import { freePort } from "../../bench/ipc.js";
import { answersPing } from "../../bench/redis-nodes.js";

const BINARY = process.env.RUNNEL_REDIS_SERVER ?? "redis-server";

/** Whether redis-server can be run here. */
export const redisInstalled: boolean = spawnSync(BINARY, ["--version"], { stdio: "ignore" }).status === 0;

const HOW = "redis-server is not installed: Redis bus tests are skipped. Enable them with `sudo apt-get install redis-server` (or set RUNNEL_REDIS_SERVER to its path).";

if (!redisInstalled) {
  if (process.env.CI === "true") throw new Error(`${HOW} CI=true: Redis tests must run, never skip.`);
  console.warn(HOW);
}

/** `describe` when redis-server is available, `describe.skip` (with the message above) otherwise. */
export const describeRedis: typeof describe = redisInstalled ? describe : (describe.skip as typeof describe);

/** A running redis-server owned by a test. */
export interface RedisProcess {
  readonly port: number;
  /** redis://127.0.0.1:PORT */
  readonly url: string;
  /** A fresh client (the caller quits it). */
  client(): Redis;
  /** SIGKILL, and wait until it is gone. */
  kill(): Promise<void>;
  /** Start again on the same port (same data directory; with `aof`, the data survives a kill). */
  restart(): Promise<void>;
  /** Stop for good and remove its directory. */
  stop(): Promise<void>;
}

/** Starts redis-server on a free port. `aof: true` persists every write (appendfsync always). */
export async function startRedis(options: { aof?: boolean } = {}): Promise<RedisProcess> {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), "runnel-redis-"));
  const args = [
    "--port", String(port), "--bind", "127.0.0.1", "--save", "", "--dir", dir,
    ...(options.aof === true ? ["--appendonly", "yes", "--appendfsync", "always"] : ["--appendonly", "no"]),
  ];
  let child: ChildProcess | undefined;
  const launch = async (): Promise<void> => {
    const c = spawn(BINARY, args, { stdio: "ignore" });
    child = c;
    await waitForPing(port, c);
  };
  await launch();
  const kill = async (): Promise<void> => {
    const c = child;
    child = undefined;
    if (c === undefined || c.exitCode !== null || c.signalCode !== null) return;
    const exited = new Promise((resolve) => c.once("exit", resolve));
    c.kill("SIGKILL");
    await exited;
  };
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    client: () => new Redis({ port, host: "127.0.0.1", protocol: 2, lazyConnect: false }),
    kill,
    restart: launch,
    async stop() {
      await kill();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Connection figures of redis-server, asked over `probe` (which is not counted). */
export async function connectionFigures(probe: Redis): Promise<{ open: number; everAccepted: number }> {
  const list = (await probe.call("CLIENT", "LIST")) as string;
  const info = await probe.info("stats");
  const accepted = /total_connections_received:(\d+)/.exec(info);
  if (accepted === null) throw new Error("INFO stats has no total_connections_received");
  return { open: list.trim().split("\n").length - 1, everAccepted: Number(accepted[1]) };
}

async function waitForPing(port: number, child: ChildProcess): Promise<void> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`redis-server exited with ${child.exitCode} while starting on port ${port}`);
    if (await answersPing(port)) return;
    if (Date.now() > deadline) throw new Error(`redis-server did not answer on port ${port} within 10 s`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
