/**
 * What the kernel says about our sockets and fds: CLOSE_WAIT sockets on a
 * port (from /proc/net/tcp and tcp6) and this process's open fds.
 */
import { readFileSync, readdirSync } from "node:fs";

const CLOSE_WAIT = "08";
const ESTABLISHED = "01";

/** A row of /proc/net/tcp or tcp6, with the local port it belongs to. */
interface TcpRow {
  readonly localPort: number;
  readonly remotePort: number;
  readonly state: string;
  /** The "tr:when" column: kind of the active timer. */
  readonly timer: number;
}

/** Every IPv4 and IPv6 TCP socket the kernel lists. */
function* tcpRows(): Generator<TcpRow> {
  for (const file of ["/proc/net/tcp", "/proc/net/tcp6"]) {
    let text: string;
    try {
      text = readFileSync(file, "utf8");
    } catch {
      continue;
    }
    for (const line of text.split("\n").slice(1)) {
      const cols = line.trim().split(/\s+/);
      if (cols.length < 6) continue;
      yield {
        localPort: parseInt(cols[1]!.split(":")[1]!, 16),
        remotePort: parseInt(cols[2]!.split(":")[1]!, 16),
        state: cols[3]!,
        timer: parseInt(cols[5]!.split(":")[0]!, 16),
      };
    }
  }
}

/** Sockets in CLOSE_WAIT whose local port is `port` (the server side of a connection the peer closed). */
export function closeWaitCount(port: number): number {
  let count = 0;
  for (const row of tcpRows()) if (row.state === CLOSE_WAIT && row.localPort === port) count++;
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
  const timers = new Map<number, TcpTimer>();
  for (const row of tcpRows()) {
    if (row.state === ESTABLISHED && row.localPort === port) timers.set(row.remotePort, row.timer as TcpTimer);
  }
  return timers;
}
