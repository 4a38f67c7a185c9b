/**
 * The tail bench's writer, in its own process: appends RATE lines per second
 * for SECONDS seconds to FILE, in batches every 10 ms, each line
 * "SEQ WRITE_TIME_MS padding". Prints "DONE <lines>" when finished.
 * Usage: node dist/bench/tail-writer-child.js FILE RATE SECONDS
 */
import { closeSync, openSync, writeSync } from "node:fs";
import { now } from "./ipc.js";

const [file, rateRaw, secondsRaw] = process.argv.slice(2);
const rate = Number(rateRaw);
const seconds = Number(secondsRaw);
if (file === undefined || !(rate > 0) || !(seconds > 0)) {
  process.stderr.write("usage: tail-writer-child FILE RATE SECONDS\n");
  process.exit(2);
}
const total = Math.round(rate * seconds);
const PAD = "x".repeat(60);
const fd = openSync(file, "a");
const started = now();
let seq = 0;

function tick(): void {
  // Catch up to where the schedule says we should be: the rate holds even when a tick is late.
  const due = Math.min(total, Math.floor(((now() - started) / 1000) * rate));
  if (due > seq) {
    const t = now().toFixed(3);
    let chunk = "";
    while (seq < due) chunk += `${seq++} ${t} ${PAD}\n`;
    writeSync(fd, chunk);
  }
  if (seq < total) setTimeout(tick, 10);
  else {
    closeSync(fd);
    process.stdout.write(`DONE ${seq}\n`);
  }
}
tick();
