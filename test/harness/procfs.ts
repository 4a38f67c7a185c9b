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
