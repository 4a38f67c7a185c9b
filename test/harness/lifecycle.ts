/**
 * What every lifecycle test checks after a stream ended, in one place: the
 * stream body's finally ran once per stream opened, the ledger and the bus
 * hold nothing, exactly the expected end cause was counted, and the kernel
 * shows no server socket left in CLOSE_WAIT. Plus a subscriber that records
 * what it saw and how its call ended, without ever throwing.
 */
import { heartbeats } from "../../src/stream/heartbeat-wheel.js";
import { heldResources } from "../../src/stream/scope.js";
import { tailHeld } from "../../src/tail/open-file.js";
import { Code, ConnectError, type Client } from "@connectrpc/connect";
import { expect } from "vitest";
import type { MessageInitShape } from "@bufbuild/protobuf";
import type { EventService, SubscribeRequestSchema, SubscribeResponse } from "../../gen/runnel/v1/event_pb.js";
import type { RunnelServer } from "../../src/server.js";
import { END_CAUSES, type EndCause } from "../../src/stream/end-cause.js";
import { closeWaitCount } from "./procfs.js";
import { waitFor } from "./server.js";

/** The Subscribe rpc as the ledger labels it. */
export const SUBSCRIBE = "runnel.v1.EventService/Subscribe";

/** Counters before a cell, to compare with after. */
export interface LedgerSnapshot {
  readonly finallyRan: number;
  readonly ended: ReadonlyMap<EndCause, number>;
}

/** Read the counters a cell will compare against. */
export function snapshot(server: RunnelServer, rpc = SUBSCRIBE): LedgerSnapshot {
  const ended = new Map<EndCause, number>();
  for (const c of END_CAUSES) ended.set(c, server.ledger.endedCount(rpc, c));
  return { finallyRan: server.ledger.finallyRan, ended };
}

/** End causes counted since `before`, only those that moved. */
export function causesSince(server: RunnelServer, before: LedgerSnapshot, rpc = SUBSCRIBE): Record<string, number> {
  const out: Record<string, number> = {};
  for (const c of END_CAUSES) {
    const d = server.ledger.endedCount(rpc, c) - before.ended.get(c)!;
    if (d !== 0) out[c] = d;
  }
  return out;
}

/**
 * Wait (bounded, against hangs only) for every stream to be gone, then assert
 * the cell's whole footprint: `opened` streams ended with `cause`, each body's
 * finally ran, nothing is held, no CLOSE_WAIT on the server's port.
 */
export async function expectCleanEnd(
  server: RunnelServer,
  before: LedgerSnapshot,
  expected: { cause: EndCause; opened?: number; rpc?: string },
): Promise<void> {
  const opened = expected.opened ?? 1;
  const rpc = expected.rpc ?? SUBSCRIBE;
  await waitFor(() => server.ledger.size === 0, 15_000, `ledger empty (causes so far: ${JSON.stringify(causesSince(server, before, rpc))})`);
  expect(causesSince(server, before, rpc)).toEqual({ [expected.cause]: opened });
  expect(server.ledger.finallyRan - before.finallyRan).toBe(opened);
  expect(server.ledger.size).toBe(0);
  // Every scope in the process (source side and exchange side of every stream) holds nothing.
  expect([...heldResources()]).toEqual([]);
  expect(server.bus.stats().subscriptionsActive).toBe(0);
  // The shared heartbeat wheel holds no member and runs no timer once no stream is live.
  expect({ members: heartbeats.size, timers: heartbeats.timers }).toEqual({ members: 0, timers: 0 });
  // Tail: no file watcher and no followed file left open in the process.
  expect(tailHeld()).toEqual({ watchers: 0, openFiles: 0 });
  await waitFor(() => closeWaitCount(server.port) === 0, 15_000, `no CLOSE_WAIT on port ${server.port} (now ${closeWaitCount(server.port)})`);
}

/** A subscription driven in the background. */
export interface Subscriber {
  readonly messages: SubscribeResponse[];
  /** Resolves with the subscription id once Subscribed arrived; rejects if the call ended first. */
  readonly subscribed: Promise<string>;
  /** Resolves when the call ended: undefined for a clean end, else the error (never rejects). */
  readonly done: Promise<ConnectError | undefined>;
  readonly abort: AbortController;
  /** Events received, in order. */
  events(): Extract<SubscribeResponse["kind"], { case: "event" }>["value"][];
  /** The Closing message, if one arrived. */
  closing(): Extract<SubscribeResponse["kind"], { case: "closing" }>["value"] | undefined;
}

/** Subscribe with `client` and read everything in the background. */
export function subscribe(
  client: Client<typeof EventService>,
  request: MessageInitShape<typeof SubscribeRequestSchema> & { topic: string },
  options: { timeoutMs?: number } = {},
): Subscriber {
  const messages: SubscribeResponse[] = [];
  const abort = new AbortController();
  let onSubscribed!: (id: string) => void;
  let onFailed!: (e: unknown) => void;
  const subscribed = new Promise<string>((resolve, reject) => {
    onSubscribed = resolve;
    onFailed = reject;
  });
  subscribed.catch(() => undefined);
  const done = (async (): Promise<ConnectError | undefined> => {
    try {
      const callOptions = options.timeoutMs !== undefined ? { signal: abort.signal, timeoutMs: options.timeoutMs } : { signal: abort.signal };
      for await (const m of client.subscribe(request, callOptions)) {
        messages.push(m);
        if (m.kind.case === "subscribed") onSubscribed(m.kind.value.subscriptionId);
      }
      onFailed(new Error("stream ended before Subscribed"));
      return undefined;
    } catch (e) {
      const err = ConnectError.from(e);
      onFailed(err);
      return err;
    }
  })();
  return {
    messages,
    subscribed,
    done,
    abort,
    events: () => messages.flatMap((m) => (m.kind.case === "event" ? [m.kind.value] : [])),
    closing: () => {
      for (const m of messages) if (m.kind.case === "closing") return m.kind.value;
      return undefined;
    },
  };
}

/** The code a finished subscriber saw (OK when it ended cleanly). */
export async function codeOf(sub: Subscriber): Promise<Code | "ok"> {
  const e = await sub.done;
  return e === undefined ? "ok" : e.code;
}

/** A name usable as a topic token. */
export function token(name: string): string {
  return name.replace(/[^a-zA-Z0-9]+/g, "_");
}
