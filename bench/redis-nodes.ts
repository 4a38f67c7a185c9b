/**
 * The bench's Redis setup: a throwaway redis-server on a free port (no
 * persistence) for the Redis-bus rows, stopped with the run. The nodes
 * themselves are ordinary server children started with `runnel-redis URL`.
 * The tests' harness (test/harness/redis.ts) uses its port and PING helpers.
 */
import { spawn, spawnSync } from "node:child_process";
import net from "node:net";
import { freePort, sleep } from "./ipc.js";

/** A running redis-server owned by the bench. */
export interface BenchRedis {
  readonly url: string;
  stop(): Promise<void>;
}

/** Whether redis-server can run here. */
export function redisAvailable(): boolean {
  return spawnSync("redis-server", ["--version"], { stdio: "ignore" }).status === 0;
}

/** Starts redis-server on a free loopback port and waits until it answers. */
export async function startBenchRedis(): Promise<BenchRedis> {
  const port = await freePort();
  const child = spawn("redis-server", ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"], { stdio: "ignore" });
  process.once("exit", () => child.kill("SIGKILL"));
  const deadline = Date.now() + 10_000;
  while (!(await answersPing(port))) {
    if (child.exitCode !== null || Date.now() > deadline) throw new Error(`redis-server did not start on port ${port}`);
    await sleep(20);
  }
  return {
    url: `redis://127.0.0.1:${port}`,
    async stop() {
      if (child.exitCode !== null) return;
      const exited = new Promise((r) => child.once("exit", r));
      child.kill("SIGKILL");
      await exited;
    },
  };
}


/** Whether a redis-server on `port` answers PING (false while it starts or loads its data). */
export function answersPing(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(port, "127.0.0.1");
    s.once("error", () => resolve(false));
    s.once("connect", () => s.write("PING\r\n"));
    s.once("data", (d) => {
      s.destroy();
      resolve(d.toString().startsWith("+PONG"));
    });
  });
}
