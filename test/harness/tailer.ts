/**
 * A Tail call driven in the background for tests: records every message and
 * how the call ended (never throws), plus a temp directory to tail in.
 */
import { ConnectError, createClient, type Client, type Transport } from "@connectrpc/connect";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { closeSync, mkdtempSync, openSync, readdirSync, readlinkSync, realpathSync, rmSync, watch } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { FileEventKind, TailService, type TailRequestSchema, type TailResponse } from "../../gen/runnel/v1/tail_pb.js";
import { tailHeld } from "../../src/tail/open-file.js";
import { waitFor } from "./server.js";

/** The Tail rpc as the ledger labels it. */
export const TAIL = "runnel.v1.TailService/Tail";

export type TailClient = Client<typeof TailService>;
export type LineValue = Extract<TailResponse["kind"], { case: "line" }>["value"];

/** A tail call in progress. */
export interface Tailer {
  readonly messages: TailResponse[];
  /** Resolves with the stream id once TailStarted arrived; rejects if the call ended first. */
  readonly started: Promise<string>;
  /** Resolves when the call ended: undefined for OK, else the error. */
  readonly done: Promise<ConnectError | undefined>;
  readonly abort: AbortController;
  lines(): LineValue[];
  texts(): string[];
  fileEvents(): FileEventKind[];
  closing(): Extract<TailResponse["kind"], { case: "closing" }>["value"] | undefined;
}

/** A client of the Tail service over `transport`. */
export function tailClient(transport: Transport): TailClient {
  return createClient(TailService, transport);
}

/** Start a Tail call and read it in the background. */
export function startTail(client: TailClient, request: MessageInitShape<typeof TailRequestSchema>, options: { timeoutMs?: number } = {}): Tailer {
  const messages: TailResponse[] = [];
  const abort = new AbortController();
  let onStarted!: (id: string) => void;
  let onFailed!: (e: unknown) => void;
  const started = new Promise<string>((resolve, reject) => {
    onStarted = resolve;
    onFailed = reject;
  });
  started.catch(() => undefined);
  const done = (async (): Promise<ConnectError | undefined> => {
    try {
      for await (const m of client.tail(request, { signal: abort.signal, ...(options.timeoutMs !== undefined ? { timeoutMs: options.timeoutMs } : {}) })) {
        messages.push(m);
        if (m.kind.case === "started") onStarted(m.kind.value.streamId);
      }
      onFailed(new Error("stream ended before TailStarted"));
      return undefined;
    } catch (e) {
      const err = ConnectError.from(e);
      onFailed(err);
      return err;
    }
  })();
  const lines = (): LineValue[] => messages.flatMap((m) => (m.kind.case === "line" ? [m.kind.value] : []));
  return {
    messages,
    started,
    done,
    abort,
    lines,
    texts: () => lines().map((l) => l.text),
    fileEvents: () => messages.flatMap((m) => (m.kind.case === "fileEvent" ? [m.kind.value.kind] : [])),
    closing: () => {
      for (const m of messages) if (m.kind.case === "closing") return m.kind.value;
      return undefined;
    },
  };
}

/** Wait until `t` has received at least `n` lines. */
export async function waitForLines(t: Tailer, n: number, timeoutMs = 10_000): Promise<void> {
  await waitFor(() => t.lines().length >= n, timeoutMs, `${n} lines (have ${t.lines().length})`);
}

/** A fresh temp directory (real path) removed by the returned cleanup. */
export function tempTailDir(prefix = "runnel-tail-"): { dir: string; file: (name: string) => string; remove: () => void } {
  const dir = realpathSync(mkdtempSync(path.join(tmpdir(), prefix)));
  return { dir, file: (name) => path.join(dir, name), remove: () => rmSync(dir, { recursive: true, force: true }) };
}

/** Watchers and open files held by tail sources in this process right now. */
export { tailHeld };

/** This process's open fds that point at files under `dir` (from /proc/self/fd). */
export function fdsUnder(dir: string): string[] {
  const out: string[] = [];
  for (const fd of readdirSync("/proc/self/fd")) {
    try {
      const target = readlinkSync(`/proc/self/fd/${fd}`);
      if (target.startsWith(`${dir}/`)) out.push(target);
    } catch {
      // closed meanwhile
    }
  }
  return out;
}

/**
 * Make libuv create its inotify fd (one per process, kept for the process's
 * life once a watch was made), so fd baselines taken afterwards compare like with like.
 */
export function warmInotify(dir: string): void {
  watch(dir).close();
  closeSync(openSync(dir, "r"));
}
