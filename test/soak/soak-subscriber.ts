/**
 * One resumable subscriber of the soak, with the checks that make the soak
 * mean something: every event of its topics exactly once, in seq order, or
 * an honest Gap. It restarts itself after every failure with its last
 * cursor. (A minimal resume loop written for the soak; the project's
 * resumable client, once it lands, can replace `InProcessSubscriber`.)
 *
 * Two kinds: in-process (connect-es client, optionally through its own TCP
 * relay so chaos can destroy or silence its socket) and a child process
 * running `runnel subscribe --json` (so chaos can SIGKILL it).
 */
import { createClient, type Transport } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport, createGrpcWebTransport } from "@connectrpc/connect-node";
import { spawn, type ChildProcess } from "node:child_process";
import { createInterface } from "node:readline";
import { EventService, type SubscribeRequest } from "../../gen/runnel/v1/event_pb.js";
import { startTcpProxy, type TcpProxy } from "../harness/tcp-proxy.js";

/** What a subscriber saw, checked as it arrived. */
export class DeliveryCheck {
  /** Last seq seen (or skipped by a Gap) per topic. */
  readonly last = new Map<string, bigint>();
  received = 0;
  duplicates = 0;
  /** Events missing without a Gap saying so. */
  holes = 0;
  /** Events reported missing by Gaps. */
  gapped = 0;
  cursor = "";

  event(topic: string, seq: bigint, cursor: string): void {
    const last = this.last.get(topic) ?? 0n;
    if (seq <= last) {
      this.duplicates++;
      return;
    }
    if (seq > last + 1n) this.holes += Number(seq - last - 1n);
    this.last.set(topic, seq);
    this.received++;
    this.cursor = cursor;
  }

  gap(topic: string, fromSeq: bigint, toSeq: bigint): void {
    const last = this.last.get(topic) ?? 0n;
    const from = fromSeq > last + 1n ? fromSeq : last + 1n;
    if (toSeq >= from) this.gapped += Number(toSeq - from + 1n);
    if (toSeq > last) this.last.set(topic, toSeq);
  }

  /** True when every topic in `published` that `matches` has been seen up to its last seq. */
  caughtUp(published: ReadonlyMap<string, bigint>, matches: (topic: string) => boolean): boolean {
    for (const [topic, seq] of published) if (matches(topic) && (this.last.get(topic) ?? 0n) < seq) return false;
    return true;
  }
}

/** Chaos a subscriber can suffer. */
export type ChaosKind = "abort" | "socket_destroy" | "silent_proxy" | "sigkill";

/** A soak subscriber of either kind. */
export interface SoakSubscriber {
  readonly topic: string;
  readonly check: DeliveryCheck;
  readonly restarts: number;
  /** The chaos this subscriber can be hit with. */
  readonly kinds: readonly ChaosKind[];
  hit(kind: ChaosKind): void;
  stop(): Promise<void>;
}

const TRANSPORT_MAKERS: readonly ((baseUrl: string) => Transport)[] = [
  (baseUrl) => createConnectTransport({ baseUrl, httpVersion: "1.1" }),
  (baseUrl) => createConnectTransport({ baseUrl, httpVersion: "2", idleConnectionTimeoutMs: 500 }),
  (baseUrl) => createGrpcTransport({ baseUrl, idleConnectionTimeoutMs: 500 }),
  (baseUrl) => createGrpcWebTransport({ baseUrl, httpVersion: "1.1" }),
  (baseUrl) => createGrpcWebTransport({ baseUrl, httpVersion: "2", idleConnectionTimeoutMs: 500 }),
];

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** An in-process subscriber with a resume loop and a silence watchdog (no message for `silenceMs`: reconnect). */
export class InProcessSubscriber implements SoakSubscriber {
  readonly check = new DeliveryCheck();
  restarts = 0;
  /** Where the resume loop is, for the soak's progress lines (a subscriber stuck in one place shows up there). */
  state: "relay" | "subscribing" | "streaming" | "closing_relay" | "waiting" | "stopped" = "relay";
  readonly kinds: readonly ChaosKind[];
  private stopped = false;
  private attempt: AbortController | undefined;
  private proxy: TcpProxy | undefined;
  private readonly loop: Promise<void>;

  constructor(
    private readonly serverPort: number,
    readonly topic: string,
    private readonly index: number,
    private readonly viaProxy: boolean,
    private readonly silenceMs: number,
  ) {
    this.kinds = viaProxy ? ["abort", "socket_destroy", "silent_proxy"] : ["abort"];
    this.loop = this.run();
  }

  hit(kind: ChaosKind): void {
    if (kind === "abort") this.attempt?.abort();
    else if (kind === "socket_destroy") this.proxy?.destroyConnections();
    else if (kind === "silent_proxy") this.proxy?.silence();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.attempt?.abort();
    await this.loop;
  }

  private async run(): Promise<void> {
    while (!this.stopped) {
      const attempt = (this.attempt = new AbortController());
      this.state = "relay";
      this.proxy = this.viaProxy ? await startTcpProxy(this.serverPort) : undefined;
      const baseUrl = this.proxy?.url ?? `http://127.0.0.1:${this.serverPort}`;
      const client = createClient(EventService, TRANSPORT_MAKERS[this.index % TRANSPORT_MAKERS.length]!(baseUrl));
      const start: SubscribeRequest["start"] = this.check.cursor === "" ? { case: "earliest", value: true } : { case: "afterCursor", value: this.check.cursor };
      // Silence means no message for `silenceMs` once the stream is up; setting up gets four times as long
      // (on a loaded machine hundreds of connections being set up at once are slow, not silent).
      let lastMessageMs = Date.now();
      let allowedMs = this.silenceMs * 4;
      const watchdog = setInterval(() => {
        if (Date.now() - lastMessageMs > allowedMs) attempt.abort();
      }, Math.max(100, this.silenceMs / 4));
      this.state = "subscribing";
      try {
        for await (const m of client.subscribe({ topic: this.topic, start, heartbeatMs: 1_000 }, { signal: attempt.signal })) {
          lastMessageMs = Date.now();
          allowedMs = this.silenceMs;
          this.state = "streaming";
          if (m.kind.case === "event") this.check.event(m.kind.value.topic, m.kind.value.seq, m.kind.value.cursor);
          else if (m.kind.case === "gap") this.check.gap(m.kind.value.topic, m.kind.value.fromSeq, m.kind.value.toSeq);
        }
      } catch {
        // Every way the attempt can end is a reason to resume.
      } finally {
        clearInterval(watchdog);
        attempt.abort();
        this.state = "closing_relay";
        await this.proxy?.close();
        this.proxy = undefined;
      }
      if (this.stopped) break;
      this.restarts++;
      this.state = "waiting";
      await sleep(20 + Math.floor(Math.random() * 100));
    }
    this.state = "stopped";
  }
}

/** A `runnel subscribe --json` child process, restarted with `--after CURSOR` whenever it dies. */
export class ChildSubscriber implements SoakSubscriber {
  readonly check = new DeliveryCheck();
  restarts = 0;
  readonly kinds: readonly ChaosKind[] = ["sigkill"];
  private stopped = false;
  private child: ChildProcess | undefined;
  private readonly loop: Promise<void>;

  constructor(
    private readonly cliPath: string,
    private readonly baseUrl: string,
    readonly topic: string,
  ) {
    this.loop = this.run();
  }

  hit(kind: ChaosKind): void {
    if (kind === "sigkill") this.child?.kill("SIGKILL");
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.child?.kill("SIGKILL");
    await this.loop;
  }

  private async run(): Promise<void> {
    while (!this.stopped) {
      const position = this.check.cursor === "" ? ["--earliest"] : ["--after", this.check.cursor];
      const child = (this.child = spawn(process.execPath, [this.cliPath, "subscribe", this.topic, ...position, "--json", "--url", this.baseUrl, "--protocol", "grpc"], {
        stdio: ["ignore", "pipe", "ignore"],
      }));
      const lines = createInterface({ input: child.stdout! });
      lines.on("line", (line) => {
        const m = JSON.parse(line) as { type: string; topic: string; seq: string; cursor: string; fromSeq: string; toSeq: string };
        if (m.type === "event") this.check.event(m.topic, BigInt(m.seq), m.cursor);
        else if (m.type === "gap") this.check.gap(m.topic, BigInt(m.fromSeq), BigInt(m.toSeq));
      });
      await new Promise<void>((resolve) => child.once("close", () => resolve()));
      lines.close();
      if (this.stopped) return;
      this.restarts++;
      await sleep(50 + Math.floor(Math.random() * 100));
    }
  }
}
