/**
 * `npm run bench -- tail`: a file appended at 50k lines/s for 10 s, followed
 * by 10 runnel Tail streams (gRPC over two HTTP/2 connections) and by GNU
 * `tail -F` in the same run. Reports lines delivered, lost and duplicated per
 * follower, and the lag from write to receipt (p50/p99/max), plus the CPU the
 * runnel server used. Processes: the runnel server (`runnel serve`), the
 * writer and `tail -F` are children; the runnel followers run here.
 *
 *   node dist/bench/tail.js [--rate N] [--seconds S] [--followers N] [--drain S]
 *
 * "lost" counts holes (a line not received although a later one was); lines
 * not received when the drain time is over are "behind" (still being read).
 */
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { createInterface } from "node:readline";
import { parseArgs } from "node:util";
import { TailService } from "../gen/runnel/v1/tail_pb.js";
import { now, percentile, sleep } from "./ipc.js";

/** What one follower saw. */
interface Tally {
  readonly name: string;
  readonly seen: Uint8Array;
  readonly lags: Float64Array;
  received: number;
  duplicates: number;
  /** Times the server closed the stream (slow tailer) and the follower resumed with its cursor. */
  reconnects: number;
  /** Highest seq received. */
  highest: number;
}

function tally(name: string, total: number): Tally {
  return { name, seen: new Uint8Array(total), lags: new Float64Array(total), received: 0, duplicates: 0, reconnects: 0, highest: -1 };
}

/** Lines skipped: not received although a later one was (a hole, not lag). */
function lost(t: Tally): number {
  let n = 0;
  for (let i = 0; i < t.highest; i++) if (t.seen[i] === 0) n++;
  return n;
}

/** Record one received line "SEQ WRITE_TIME ...". */
function note(t: Tally, text: string, at: number): void {
  const a = text.indexOf(" ");
  const b = text.indexOf(" ", a + 1);
  const seq = Number(text.slice(0, a));
  if (!(seq >= 0 && seq < t.seen.length)) return;
  if (t.seen[seq] === 1) {
    t.duplicates++;
    return;
  }
  t.seen[seq] = 1;
  if (seq > t.highest) t.highest = seq;
  t.lags[t.received++] = at - Number(text.slice(a + 1, b));
}

/** CPU seconds (user + system) a process used so far, from /proc. */
function cpuSeconds(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
  return (Number(fields[11]) + Number(fields[12])) / 100; // utime, stime in clock ticks (100/s)
}

async function startRunnel(dir: string): Promise<{ child: ChildProcess; url: string }> {
  const cli = new URL("../src/cli.js", import.meta.url).pathname;
  const child = spawn(process.execPath, [cli, "serve", "--port", "0", "--tail-dir", dir, "--log-level", "warn"], { stdio: ["ignore", "pipe", "inherit"] });
  const url = await new Promise<string>((resolve, reject) => {
    createInterface({ input: child.stdout! }).on("line", (line) => {
      const m = /listening on (\S+)/.exec(line);
      if (m !== null) resolve(m[1]!);
    });
    child.once("exit", (code) => reject(new Error(`runnel serve exited with ${code}`)));
  });
  return { child, url };
}

function row(t: Tally, total: number): string {
  const lags = t.lags.subarray(0, t.received);
  const holes = lost(t);
  const cells = [t.name, String(t.received), String(holes), String(total - t.received - holes), String(t.duplicates), String(t.reconnects), percentile(lags, 50).toFixed(1), percentile(lags, 99).toFixed(1), percentile(lags, 100).toFixed(1)];
  return `| ${cells.join(" | ")} |`;
}

/** Run the tail bench; prints a Markdown table. */
export async function main(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      rate: { type: "string", default: "50000" },
      seconds: { type: "string", default: "10" },
      followers: { type: "string", default: "10" },
      drain: { type: "string", default: "60" },
    },
  });
  const drain = Number(values.drain);
  const rate = Number(values.rate);
  const seconds = Number(values.seconds);
  const followers = Number(values.followers);
  const total = Math.round(rate * seconds);
  const dir = mkdtempSync(path.join(tmpdir(), "runnel-bench-tail-"));
  const file = path.join(dir, "bench.log");
  writeFileSync(file, "");
  const children: ChildProcess[] = [];
  const abort = new AbortController();
  try {
    const server = await startRunnel(dir);
    children.push(server.child);
    const transports = [createGrpcTransport({ baseUrl: server.url }), createGrpcTransport({ baseUrl: server.url })];
    const tallies: Tally[] = [];
    const started: Promise<void>[] = [];
    const done: Promise<void>[] = [];
    for (let i = 0; i < followers; i++) {
      const t = tally(`runnel follower ${i + 1}`, total);
      tallies.push(t);
      const client = createClient(TailService, transports[i % transports.length]!);
      let onStarted!: () => void;
      started.push(new Promise((r) => (onStarted = r)));
      done.push(
        (async () => {
          // What a real client does: on Closing (a slow tailer is disconnected with its resume cursor), reconnect
          // right after the last line it got.
          let cursor = "";
          while (!abort.signal.aborted) {
            try {
              const request = cursor === "" ? { path: "bench.log", lines: 0 } : { path: "bench.log", afterCursor: cursor };
              for await (const m of client.tail(request, { signal: abort.signal })) {
                if (m.kind.case === "line") {
                  note(t, m.kind.value.text, now());
                  cursor = m.kind.value.cursor;
                } else if (m.kind.case === "started") onStarted();
                else if (m.kind.case === "closing") t.reconnects++;
              }
              return;
            } catch (e) {
              if (abort.signal.aborted) return;
              if (!(e instanceof ConnectError) || (e.code !== Code.ResourceExhausted && e.code !== Code.Unavailable)) {
                console.error(`${t.name}: ${String(e)}`);
                return;
              }
            }
          }
        })(),
      );
    }
    await Promise.all(started);
    const gnu = tally("GNU tail -F", total);
    const tailF = spawn("tail", ["-F", "-n", "0", "-s", "0.1", file], { stdio: ["ignore", "pipe", "ignore"] });
    children.push(tailF);
    createInterface({ input: tailF.stdout! }).on("line", (line) => note(gnu, line, now()));
    await sleep(300); // tail -F has opened the file

    const cpuBefore = cpuSeconds(server.child.pid!);
    const writer = spawn(process.execPath, [new URL("./tail-writer-child.js", import.meta.url).pathname, file, String(rate), String(seconds)], { stdio: ["ignore", "pipe", "inherit"] });
    children.push(writer);
    const t0 = now();
    await new Promise<void>((resolve) => createInterface({ input: writer.stdout! }).on("line", (l) => l.startsWith("DONE") && resolve()));
    const writeSeconds = (now() - t0) / 1000;
    // Drain: wait until everyone has everything, at most `drain` seconds; what is still missing then
    // is reported as "behind" (not read yet), apart from holes (skipped lines: "lost").
    const everyone = [...tallies, gnu];
    const drainUntil = now() + drain * 1000;
    while (now() < drainUntil && everyone.some((t) => t.received < total)) await sleep(100);
    const drained = (now() - t0) / 1000 - writeSeconds;
    const cpu = cpuSeconds(server.child.pid!) - cpuBefore;
    console.log(`\nTail: ${total} lines (${rate}/s for ${seconds} s, written in ${writeSeconds.toFixed(1)} s), ${followers} runnel followers (gRPC, 2 HTTP/2 connections) + GNU tail -F, one machine; counted ${drained.toFixed(1)} s after the last write\n`);
    console.log("| follower | lines delivered | lost (holes) | behind at the end | duplicated | resumed after Closing | lag p50 ms | lag p99 ms | lag max ms |");
    console.log("|---|---|---|---|---|---|---|---|---|");
    for (const t of tallies) console.log(row(t, total));
    console.log(row(gnu, total));
    console.log(`\nrunnel server CPU over the run: ${cpu.toFixed(1)} s (${((cpu / seconds) * 100).toFixed(0)}% of one core over the ${seconds} s of writing)`);
  } finally {
    abort.abort();
    for (const c of children) c.kill("SIGKILL");
    rmSync(dir, { recursive: true, force: true });
  }
}

// Run directly: node dist/bench/tail.js
if (process.argv[1] !== undefined && new URL(import.meta.url).pathname === process.argv[1]) {
  main(process.argv.slice(2)).then(
    () => process.exit(0),
    (e: unknown) => {
      console.error(e);
      process.exit(1);
    },
  );
}
