/**
 * A nats-server of the bench's own, on free loopback ports (never the
 * machine's 4222), for the NATS core column: started, watched through its
 * monitoring port, and killed with the process that started it.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { freePort, sleep } from "./ipc.js";

/** Where Debian's nats-server package puts the binary, then PATH. */
const CANDIDATES = ["/usr/sbin/nats-server", "/usr/bin/nats-server", "/usr/local/bin/nats-server"];

/** The nats-server binary, or undefined when none is installed (the NATS column is then skipped). */
export function natsServerBinary(): string | undefined {
  const fromEnv = process.env.NATS_SERVER;
  if (fromEnv !== undefined && existsSync(fromEnv)) return fromEnv;
  for (const c of CANDIDATES) if (existsSync(c)) return c;
  for (const dir of (process.env.PATH ?? "").split(":")) if (dir !== "" && existsSync(`${dir}/nats-server`)) return `${dir}/nats-server`;
  return undefined;
}


/** A running nats-server. */
export interface NatsServer {
  readonly url: string;
  readonly pid: number;
  /** Live subscriptions, from the monitoring endpoint. */
  subscriptions(): Promise<number>;
  /** CPU time (µs, like process.cpuUsage) and RSS (bytes) of the server process, from /proc. */
  usage(): { cpu: NodeJS.CpuUsage; rss: number };
  stop(): void;
}

/** Start nats-server on free ports and wait until it accepts connections. */
export async function startNatsServer(binary: string): Promise<NatsServer> {
  const port = await freePort();
  const monitor = await freePort();
  const child: ChildProcess = spawn(binary, ["-a", "127.0.0.1", "-p", String(port), "-m", String(monitor)], {
    stdio: ["ignore", "ignore", "pipe"],
  });
  let log = "";
  child.stderr!.on("data", (d: Buffer) => {
    if (log.length < 10_000) log += d.toString();
  });
  process.once("exit", () => child.kill("SIGKILL"));
  const varz = async (): Promise<Record<string, number>> => (await (await fetch(`http://127.0.0.1:${monitor}/varz`)).json()) as Record<string, number>;
  const deadline = Date.now() + 10_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`nats-server exited: ${log}`);
    try {
      await varz();
      break;
    } catch {
      if (Date.now() > deadline) throw new Error(`nats-server did not start: ${log}`);
      await sleep(50);
    }
  }
  const pid = child.pid!;
  // The server's own (system account) subscriptions, not the bench's.
  const own = (await varz()).subscriptions ?? 0;
  const ticksToUs = 1_000_000 / 100; // USER_HZ
  return {
    url: `nats://127.0.0.1:${port}`,
    pid,
    subscriptions: async () => ((await varz()).subscriptions ?? 0) - own,
    usage() {
      // /proc/PID/stat: fields after the command name; utime and stime are the 14th and 15th fields.
      const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
      const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      const status = readFileSync(`/proc/${pid}/status`, "utf8");
      const rssKb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? Number.NaN);
      return { cpu: { user: Number(f[11]) * ticksToUs, system: Number(f[12]) * ticksToUs }, rss: rssKb * 1024 };
    },
    stop: () => child.kill("SIGKILL"),
  };
}
