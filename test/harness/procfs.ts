/**
 * What the kernel says about our sockets and fds: CLOSE_WAIT sockets on a
 * port (from /proc/net/tcp and tcp6) and this process's open fds.
 */
import { readFileSync, readdirSync } from "node:fs";

const CLOSE_WAIT = "08";

/** Sockets in CLOSE_WAIT whose local port is `port` (the server side of a connection the peer closed). */
export function closeWaitCount(port: number): number {
  const hexPort = port.toString(16).toUpperCase().padStart(4, "0");
  let count = 0;
  for (const file of ["/proc/net/tcp", "/proc/net/tcp6"]) {
    let text: string;
    try {
      text = readFileSync(file, "utf8");
    } catch {
      continue;
    }
    for (const line of text.split("\n").slice(1)) {
      const cols = line.trim().split(/\s+/);
      if (cols.length < 4) continue;
      const local = cols[1]!;
      const state = cols[3]!;
      if (state === CLOSE_WAIT && local.endsWith(`:${hexPort}`)) count++;
    }
  }
  return count;
}

/** Open file descriptors of this process. */
export function openFdCount(): number {
  return readdirSync("/proc/self/fd").length;
}

/** Kernel timer kinds in /proc/net/tcp: 0 none, 1 retransmit, 2 keepalive, 3 TIME_WAIT, 4 zero-window probe. */
export type TcpTimer = 0 | 1 | 2 | 3 | 4;

/**
 * The active kernel timer of every established socket whose local port is
 * `port` (the server side of its connections), keyed by the peer's port.
 */
export function serverSocketTimers(port: number): Map<number, TcpTimer> {
  const hexPort = port.toString(16).toUpperCase().padStart(4, "0");
  const timers = new Map<number, TcpTimer>();
  for (const file of ["/proc/net/tcp", "/proc/net/tcp6"]) {
    let text: string;
    try {
      text = readFileSync(file, "utf8");
    } catch {
      continue;
    }
    for (const line of text.split("\n").slice(1)) {
      const cols = line.trim().split(/\s+/);
      if (cols.length < 6 || cols[3] !== "01" || !cols[1]!.endsWith(`:${hexPort}`)) continue;
      const peerPort = parseInt(cols[2]!.split(":")[1]!, 16);
      timers.set(peerPort, parseInt(cols[5]!.split(":")[0]!, 16) as TcpTimer);
    }
  }
  return timers;
}
