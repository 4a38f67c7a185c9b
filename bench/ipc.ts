/**
 * The plumbing every benchmark process shares: a clock all processes agree
 * on, request/reply over the Node IPC channel, and child processes that can
 * never outlive the orchestrator (killed on exit, on signals and on errors; a
 * child whose parent goes away exits by itself).
 */
import { fork, type ChildProcess } from "node:child_process";
import net from "node:net";

/**
 * Milliseconds on a clock shared by every process of the machine:
 * performance.timeOrigin is taken from the wall clock at process start and
 * performance.now() from the monotonic clock since then, so two processes on
 * one machine agree to within microseconds.
 */
export function now(): number {
  return performance.timeOrigin + performance.now();
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** A message from parent to child: a command with an id the reply carries back. */
interface Request {
  readonly id: number;
  readonly cmd: string;
  readonly args: Record<string, unknown>;
}

interface Reply {
  readonly id: number;
  readonly ok: boolean;
  readonly result?: unknown;
  readonly error?: string;
}

/** An unsolicited message from child to parent. */
export interface ChildEvent {
  readonly event: string;
  readonly [key: string]: unknown;
}

// ---------------------------------------------------------------- child side

type Handler = (args: Record<string, unknown>) => unknown;

/**
 * Serve commands from the parent. The child exits when the parent goes away
 * (the IPC channel closes), so a crashed or killed orchestrator leaves no
 * server or client behind.
 */
export function serveParent(handlers: Record<string, Handler>): void {
  exitWithParent();
  process.on("uncaughtException", (e) => {
    console.error(`[bench child ${process.pid}]`, e);
    process.exit(1);
  });
  process.on("unhandledRejection", (e) => {
    console.error(`[bench child ${process.pid}]`, e);
    process.exit(1);
  });
  process.on("message", (raw) => {
    const req = raw as Request;
    const handler = handlers[req.cmd];
    const reply = (r: Reply): void => {
      if (process.connected) process.send!(r);
    };
    if (handler === undefined) {
      reply({ id: req.id, ok: false, error: `unknown command ${req.cmd}` });
      return;
    }
    if (req.id === 0) {
      // A notification: no reply wanted.
      void Promise.resolve().then(() => handler(req.args));
      return;
    }
    Promise.resolve()
      .then(() => handler(req.args))
      .then(
        (result) => reply({ id: req.id, ok: true, result }),
        (e: unknown) => reply({ id: req.id, ok: false, error: e instanceof Error ? (e.stack ?? e.message) : String(e) }),
      );
  });
}

let tiedToParent = false;

/**
 * Exit as soon as the parent goes away (its IPC channel closes), including
 * when it is already gone. Children call this first thing, before any slow
 * start-up, so a killed orchestrator never leaves a server or client behind.
 */
export function exitWithParent(): void {
  if (process.send === undefined) {
    console.error("this script is started by bench/run.js");
    process.exit(2);
  }
  if (tiedToParent) return;
  tiedToParent = true;
  if (!process.connected) process.exit(0);
  process.on("disconnect", () => process.exit(0));
}

/** Send an unsolicited event to the parent. */
export function emit(event: string, data: Record<string, unknown> = {}): void {
  if (process.connected) process.send!({ event, ...data });
}

// --------------------------------------------------------------- parent side

const live = new Set<ChildProcess>();
let guarded = false;

/** SIGKILL every child still running. Safe to call more than once. */
export function killAllChildren(): void {
  for (const child of live) {
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
  }
  live.clear();
}

function guardProcess(): void {
  if (guarded) return;
  guarded = true;
  process.on("exit", killAllChildren);
  for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
    process.on(signal, () => {
      killAllChildren();
      process.exit(signal === "SIGINT" ? 130 : 143);
    });
  }
}

/** A child process driven over IPC. */
export class Child {
  private nextId = 1;
  private readonly pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  private readonly listeners = new Set<(e: ChildEvent) => void>();
  private exited = false;
  readonly exit: Promise<void>;

  constructor(
    readonly name: string,
    readonly proc: ChildProcess,
  ) {
    proc.on("message", (raw) => {
      const m = raw as Reply | ChildEvent;
      if ("event" in m) {
        for (const l of this.listeners) l(m);
        return;
      }
      const p = this.pending.get(m.id);
      if (p === undefined) return;
      this.pending.delete(m.id);
      if (m.ok) p.resolve(m.result);
      else p.reject(new Error(`${name}: ${m.error}`));
    });
    this.exit = new Promise((resolve) => {
      proc.once("exit", (code, signal) => {
        this.exited = true;
        live.delete(proc);
        for (const p of this.pending.values()) p.reject(new Error(`${name} exited (code ${code}, signal ${signal})`));
        this.pending.clear();
        resolve();
      });
    });
  }

  /** Run a command in the child and wait for its reply. */
  call<T>(cmd: string, args: Record<string, unknown> = {}, timeoutMs = 120_000): Promise<T> {
    if (this.exited) return Promise.reject(new Error(`${this.name} has exited`));
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error(`${this.name}: "${cmd}" got no reply within ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(id, {
        resolve: (v) => {
          clearTimeout(timer);
          resolve(v as T);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      });
      this.proc.send({ id, cmd, args } satisfies Request);
    });
  }

  /** Send a command without waiting for (or getting) a reply. */
  notify(cmd: string, args: Record<string, unknown> = {}): void {
    if (!this.exited && this.proc.connected) this.proc.send({ id: 0, cmd, args } satisfies Request);
  }

  /** Listen to the child's unsolicited events; returns the unsubscribe function. */
  on(listener: (e: ChildEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Ask the child to exit (so a --cpu-prof profile gets written); SIGKILL it if it does not within `graceMs`. */
  async stop(graceMs = 3_000): Promise<void> {
    if (this.exited) return;
    this.call("exit", {}, graceMs).catch(() => undefined);
    const timer = setTimeout(() => this.proc.kill("SIGKILL"), graceMs);
    await this.exit;
    clearTimeout(timer);
  }
}

/**
 * Fork `script` with IPC and wait for its "ready" event (whose fields are
 * returned). Every child is registered so that it is killed when this process
 * exits, however it exits.
 */
export async function spawnChild<R extends ChildEvent>(
  name: string,
  script: URL,
  args: string[],
  execArgv: string[] = [],
  readyTimeoutMs = 30_000,
): Promise<{ child: Child; ready: R }> {
  guardProcess();
  const proc = fork(script, args, {
    execArgv,
    serialization: "advanced",
    stdio: ["ignore", "inherit", "inherit", "ipc"],
  });
  live.add(proc);
  const child = new Child(name, proc);
  const ready = await new Promise<R>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${name} was not ready within ${readyTimeoutMs} ms`)), readyTimeoutMs);
    const off = child.on((e) => {
      if (e.event !== "ready") return;
      clearTimeout(timer);
      off();
      resolve(e as R);
    });
    void child.exit.then(() => {
      clearTimeout(timer);
      reject(new Error(`${name} exited before it was ready`));
    });
  }).catch((e: unknown) => {
    proc.kill("SIGKILL");
    throw e;
  });
  return { child, ready };
}

/** CPU time (user + system) in milliseconds from a process.cpuUsage() delta. */
export function cpuMs(from: NodeJS.CpuUsage, to: NodeJS.CpuUsage): number {
  return (to.user - from.user + to.system - from.system) / 1000;
}

/** The p-th percentile (0..100) of `values`, by nearest rank. */
export function percentile(values: ArrayLike<number>, p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = Float64Array.from(values).sort();
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[rank]!;
}

/** A loopback TCP port nothing listens on (the OS picks it), for a server the bench starts (nats-server, redis-server). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
  });
}
