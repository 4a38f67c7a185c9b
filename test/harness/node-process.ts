/**
 * A runnel node as a separate process: `node dist/src/cli.js serve --port 0
 * ...`, its URL read from the "listening" line, stopped with SIGTERM (or
 * killed) by the test. Multi-node tests run several on one Redis.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";

const CLI = join(import.meta.dirname, "..", "..", "dist", "src", "cli.js");

/** A running `runnel serve` child. */
export interface NodeProcess {
  readonly url: string;
  readonly child: ChildProcess;
  /** Everything the node wrote to stderr (its logs). */
  stderr(): string;
  /** SIGTERM and wait for the exit code. */
  stop(): Promise<number | null>;
}

/** Starts `runnel serve --port 0 ...args` and waits for its listening line (bounded against hangs). */
export async function startNode(args: readonly string[]): Promise<NodeProcess> {
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run \`npm run build\` first`);
  const child = spawn(process.execPath, [CLI, "serve", "--port", "0", "--log-level", "warn", ...args], { stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  let err = "";
  child.stderr!.setEncoding("utf8").on("data", (d: string) => (err += d));
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`node did not listen within 15 s; stderr: ${err}`)), 15_000);
    child.stdout!.setEncoding("utf8").on("data", (d: string) => {
      out += d;
      const m = /runnel listening on (\S+)/.exec(out);
      if (m !== null) {
        clearTimeout(timer);
        resolve(m[1]!);
      }
    });
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`node exited with ${code} before listening; stderr: ${err}`));
    });
  });
  return {
    url,
    child,
    stderr: () => err,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
      return exited;
    },
  };
}
