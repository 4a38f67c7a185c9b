/**
 * What a `runnel serve` process holds, read from outside the way an operator
 * would: its /metrics (live streams, resources held, bus subscriptions, end
 * causes) and the kernel (RSS and open fds from /proc/PID, CLOSE_WAIT sockets
 * on its port). It exists so the soak can run the server in its own process
 * and still prove it is back to its baseline.
 */
import http from "node:http";
import { readFileSync, readdirSync, readlinkSync } from "node:fs";
import { closeWaitCount } from "../harness/procfs.js";

/** One reading. */
export interface ServerReading {
  readonly streams: number;
  readonly resourcesHeld: number;
  readonly busSubscriptions: number;
  readonly retainedEvents: number;
  /** runnel_streams_ended_total by cause. */
  readonly endCauses: Record<string, number>;
  readonly rssMb: number;
  /** V8 heap in use (live objects and garbage not yet collected); its low points follow the live heap. */
  readonly heapUsedMb: number;
  readonly fds: number;
  /** What the fds are, by kind ("socket", "anon_inode:[eventpoll]", "pipe", a path), for a reading that differs. */
  readonly fdKinds: Record<string, number>;
  readonly closeWait: number;
}

/** GET /metrics on a connection of its own (agent: false), so the reading leaves no idle socket behind. */
function scrape(url: string): Promise<string> {
  return new Promise((resolve, reject) => {
    http
      .get(`${url}/metrics`, { agent: false }, (res) => {
        let body = "";
        res.setEncoding("utf8");
        res.on("data", (c: string) => (body += c));
        res.on("end", () => (res.statusCode === 200 ? resolve(body) : reject(new Error(`/metrics answered ${res.statusCode}`))));
      })
      .on("error", reject);
  });
}

/** Prometheus text → samples (name, labels text, value). */
function* samples(text: string): Generator<{ name: string; labels: string; value: number }> {
  for (const line of text.split("\n")) {
    const m = /^([a-z_:]+)(\{[^}]*\})? (\S+)$/.exec(line);
    if (m !== null) yield { name: m[1]!, labels: m[2] ?? "", value: Number(m[3]) };
  }
}

/** The open fds of process `pid`, counted and grouped by kind. */
function fdsOf(pid: number): { fds: number; fdKinds: Record<string, number> } {
  const fdKinds: Record<string, number> = {};
  let fds = 0;
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    let target: string;
    try {
      target = readlinkSync(`/proc/${pid}/fd/${fd}`).replace(/:\[\d+\]$/, "");
    } catch {
      continue; // closed while we looked
    }
    fds++;
    fdKinds[target] = (fdKinds[target] ?? 0) + 1;
  }
  return { fds, fdKinds };
}

/** Read the server at `url`, process `pid`, listening on `port`. */
export async function readServer(url: string, pid: number, port: number): Promise<ServerReading> {
  const text = await scrape(url);
  const sums = new Map<string, number>();
  const endCauses: Record<string, number> = {};
  // A labelled gauge with no live label set has no sample: zero, but only if the metric exists at all.
  const total = (name: string): number => {
    if (!text.includes(`# TYPE ${name} `)) throw new Error(`/metrics has no ${name}`);
    return sums.get(name) ?? 0;
  };
  for (const s of samples(text)) {
    sums.set(s.name, (sums.get(s.name) ?? 0) + s.value);
    const cause = /cause="([^"]*)"/.exec(s.labels)?.[1];
    if (s.name === "runnel_streams_ended_total" && cause !== undefined) endCauses[cause] = (endCauses[cause] ?? 0) + s.value;
  }
  const rssKb = Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1]);
  return {
    streams: total("runnel_streams_active"),
    resourcesHeld: total("runnel_stream_resources_held"),
    busSubscriptions: total("runnel_bus_subscriptions_active"),
    retainedEvents: total("runnel_bus_retained_events"),
    endCauses,
    rssMb: Math.round(rssKb / 1024),
    heapUsedMb: Math.round(total("nodejs_heap_size_used_bytes") / 1048576),
    ...fdsOf(pid),
    closeWait: closeWaitCount(port),
  };
}
