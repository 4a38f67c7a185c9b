/**
 * The two kinds of soak subscriber, each checking what it receives
 * (DeliveryCheck) and coming back with its cursor after every blow:
 *
 * - in-process: the project's resumable client (`subscribe()` from
 *   src/client) over one of five transports, optionally through its own TCP
 *   relay so chaos can destroy or silence its connections. The client
 *   resumes by itself after a destroyed or silent connection; after an abort
 *   (the application dropping the stream) the subscriber starts a new client
 *   from the cursor the old one reached.
 * - a child process running `runnel subscribe --json`, restarted with
 *   `--after CURSOR` after every SIGKILL.
 *
 * Both start live, at the head each topic had when the soak began
 * (`startSeqs`): every event published after that must arrive exactly once.
 */
import type { Transport } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport, createGrpcWebTransport } from "@connectrpc/connect-node";
import { spawn, type ChildProcess } from "node:child_process";
import { createInterface } from "node:readline";
import { subscribe } from "../../src/client/index.js";
import { startTcpProxy, type TcpProxy } from "../harness/tcp-proxy.js";
import { DeliveryCheck } from "./delivery-check.js";

/** Chaos a subscriber can suffer. */
export type ChaosKind = "abort" | "socket_destroy" | "silent_proxy" | "sigkill";

/** What every soak subscriber offers the soak. */
export interface SoakSubscriber {
  readonly topic: string;
  readonly check: DeliveryCheck;
  /** Times the subscriber was started again from its cursor (after an abort or a SIGKILL). */
  readonly restarts: number;
  /** Times the resumable client came back by itself (its onRetry). */
  readonly resumes: number;
  /** The chaos this subscriber can be hit with. */
  readonly kinds: readonly ChaosKind[];
  /** Resolves once the first stream was subscribed (the server has it: events published from now on are its). */
  readonly ready: Promise<void>;
  hit(kind: ChaosKind): void;
  stop(): Promise<void>;
}

/** H2 sessions are kept alive by PINGs, so a silent one is found by the transport too, not only by the client's watchdog. */
const H2 = { idleConnectionTimeoutMs: 500, pingIntervalMs: 2_000, pingTimeoutMs: 2_000 } as const;

/** The five ways a connect-node client can talk to runnel; subscriber i uses TRANSPORTS[i % 5]. */
export const TRANSPORTS: readonly ((baseUrl: string) => Transport)[] = [
  (baseUrl) => createConnectTransport({ baseUrl, httpVersion: "1.1" }),
  (baseUrl) => createConnectTransport({ baseUrl, httpVersion: "2", ...H2 }),
  (baseUrl) => createGrpcTransport({ baseUrl, ...H2 }),
  (baseUrl) => createGrpcWebTransport({ baseUrl, httpVersion: "1.1" }),
  (baseUrl) => createGrpcWebTransport({ baseUrl, httpVersion: "2", ...H2 }),
];

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Resolves the first time `resolve` is called; later calls do nothing. */
function once(): { promise: Promise<void>; resolve: () => void } {
  let resolve = (): void => undefined;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}

/** Options of an in-process subscriber. */
export interface InProcessOptions {
  readonly serverPort: number;
  readonly topic: string;
  /** Index into TRANSPORTS (taken modulo its length). */
  readonly transport: number;
  /** Through its own relay (chaos: socket_destroy, silent_proxy) or straight to the server (chaos: abort only). */
  readonly viaProxy: boolean;
  readonly startSeqs: ReadonlyMap<string, bigint>;
  /** The resumable client's silence bound, ms. */
  readonly silenceTimeoutMs: number;
}

/** A subscriber on the resumable client, in this process. */
export class InProcessSubscriber implements SoakSubscriber {
  readonly topic: string;
  readonly check: DeliveryCheck;
  readonly kinds: readonly ChaosKind[];
  readonly ready: Promise<void>;
  restarts = 0;
  resumes = 0;
  private readonly subscribed = once();
  private stopped = false;
  private abort: AbortController | undefined;
  private proxy: TcpProxy | undefined;
  private readonly loop: Promise<void>;

  constructor(private readonly o: InProcessOptions) {
    this.topic = o.topic;
    this.check = new DeliveryCheck(o.startSeqs);
    this.kinds = o.viaProxy ? ["abort", "socket_destroy", "silent_proxy"] : ["abort"];
    this.ready = this.subscribed.promise;
    this.loop = this.run();
  }

  hit(kind: ChaosKind): void {
    if (kind === "abort") this.abort?.abort();
    else if (kind === "socket_destroy") this.proxy?.destroyConnections();
    else if (kind === "silent_proxy") this.proxy?.silenceConnections();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.abort?.abort();
    await this.loop;
    await this.proxy?.close();
  }

  private async run(): Promise<void> {
    if (this.o.viaProxy) this.proxy = await startTcpProxy(this.o.serverPort);
    const baseUrl = this.proxy?.url ?? `http://127.0.0.1:${this.o.serverPort}`;
    let cursor = "";
    while (!this.stopped) {
      const abort = (this.abort = new AbortController());
      // A new client each time, as an application restarted from its saved cursor would make.
      const transport = TRANSPORTS[this.o.transport % TRANSPORTS.length]!(baseUrl);
      const start = cursor === "" ? {} : { start: { case: "afterCursor" as const, value: cursor } };
      const stream = subscribe(
        transport,
        { topic: this.topic, heartbeatMs: 1_000, ...start },
        {
          signal: abort.signal,
          silenceTimeoutMs: this.o.silenceTimeoutMs,
          retry: { initialDelayMs: 50, maxDelayMs: 1_000, maxAttempts: 1_000 },
          onRetry: () => this.resumes++,
        },
      );
      try {
        for await (const m of stream) {
          const k = m.kind;
          if (k.case === "event") this.check.event(k.value.topic, k.value.seq);
          else if (k.case === "gap") this.check.gap(k.value.topic, k.value.fromSeq, k.value.toSeq);
          else if (k.case === "subscribed") this.subscribed.resolve();
        }
      } catch {
        // Aborted by chaos or by stop(), or the client gave up: start again from the cursor it reached.
      }
      cursor = stream.cursor;
      if (this.stopped) break;
      this.restarts++;
      await sleep(20 + Math.floor(Math.random() * 100));
    }
  }
}

/** A `runnel subscribe --json` child process, started again with `--after CURSOR` whenever it dies. */
export class ChildSubscriber implements SoakSubscriber {
  readonly check: DeliveryCheck;
  readonly kinds: readonly ChaosKind[] = ["sigkill"];
  readonly ready: Promise<void>;
  restarts = 0;
  resumes = 0;
  private readonly subscribed = once();
  private stopped = false;
  private child: ChildProcess | undefined;
  private cursor = "";
  private readonly loop: Promise<void>;

  constructor(
    private readonly cliPath: string,
    private readonly baseUrl: string,
    readonly topic: string,
    startSeqs: ReadonlyMap<string, bigint>,
  ) {
    this.check = new DeliveryCheck(startSeqs);
    this.ready = this.subscribed.promise;
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
      const position = this.cursor === "" ? [] : ["--after", this.cursor];
      const child = (this.child = spawn(process.execPath, [this.cliPath, "subscribe", this.topic, ...position, "--json", "--url", this.baseUrl, "--protocol", "grpc"], {
        stdio: ["ignore", "pipe", "ignore"],
      }));
      const lines = createInterface({ input: child.stdout! });
      lines.on("line", (line) => {
        const m = JSON.parse(line) as { type: string; topic: string; seq: string; cursor: string; fromSeq: string; toSeq: string; headCursor: string };
        if (m.type === "event") {
          this.check.event(m.topic, BigInt(m.seq));
          this.cursor = m.cursor;
        } else if (m.type === "gap") this.check.gap(m.topic, BigInt(m.fromSeq), BigInt(m.toSeq));
        else if (m.type === "subscribed") {
          // A live start resumes from the head it was given until an event names a later position.
          if (this.cursor === "") this.cursor = m.headCursor;
          this.subscribed.resolve();
        }
      });
      await new Promise<void>((resolve) => child.once("close", () => resolve()));
      lines.close();
      if (this.stopped) return;
      this.restarts++;
      await sleep(50 + Math.floor(Math.random() * 100));
    }
  }
}
