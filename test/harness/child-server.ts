/**
 * `runnel serve` in its own process, for tests that kill the server outright
 * (SIGKILL: no Closing, no GOAWAY, sockets reset by the kernel) and start it
 * again on the same port.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { createInterface } from "node:readline";
import { CLI, ensureBuilt } from "./built.js";

/** A running server process. */
export interface ChildServer {
  readonly url: string;
  readonly port: number;
  readonly process: ChildProcess;
  /** Kill it with `signal` and wait for it to exit. */
  kill(signal?: NodeJS.Signals): Promise<void>;
}

/** Start `runnel serve --port PORT` (0: a free port) and wait for its listening line. */
export async function startChildServer(port = 0, args: string[] = []): Promise<ChildServer> {
  ensureBuilt();
  const child = spawn(process.execPath, [CLI, "serve", "--host", "127.0.0.1", "--port", String(port), "--log-level", "warn", ...args], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const url = await new Promise<string>((resolve, reject) => {
    const lines = createInterface({ input: child.stdout! });
    lines.on("line", (line) => {
      const m = /^runnel listening on (\S+)$/.exec(line);
      if (m !== null) resolve(m[1]!);
    });
    child.once("exit", (code) => reject(new Error(`runnel serve exited with ${code} before listening`)));
  });
  return {
    url,
    port: Number(new URL(url).port),
    process: child,
    async kill(signal = "SIGKILL") {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      await exited;
    },
  };
}
