/**
 * A process that hosts many in-process soak subscribers, so that the soak's
 * clients, its publisher and the server each get their own event loop (500
 * subscribers sharing one loop with the publisher starve it). Driven over IPC
 * (bench/ipc.ts) by soak-run.ts:
 *
 * - start {serverPort, specs, startSeqs, silenceTimeoutMs}: start the
 *   subscribers, reply once every one is subscribed;
 * - hit {index, kind} (notification): chaos on subscriber `index`;
 * - status: counts so far;
 * - finish {published, timeoutMs}: wait until every subscriber has every
 *   published event (or a Gap for it), stop them all, reply with the totals.
 */
import { matches } from "../../src/bus/topic.js";
import { emit, serveParent, sleep } from "../../bench/ipc.js";
import { sumTotals, type DeliveryTotals } from "./delivery-check.js";
import { InProcessSubscriber, type ChaosKind } from "./soak-subscriber.js";

/** One subscriber to start: its topic or pattern, transport and whether it goes through a relay. */
export interface SubscriberSpec {
  readonly topic: string;
  readonly transport: number;
  readonly viaProxy: boolean;
}

/** What a host reports. */
export interface HostReport extends DeliveryTotals {
  restarts: number;
  resumes: number;
  /** Subscribers that had not caught up when `finish` gave up waiting (0 when all did). */
  behind: number;
}

let subs: InProcessSubscriber[] = [];

function report(behind = 0): HostReport {
  return {
    ...sumTotals(subs.map((s) => s.check)),
    restarts: subs.reduce((n, s) => n + s.restarts, 0),
    resumes: subs.reduce((n, s) => n + s.resumes, 0),
    behind,
  };
}

serveParent({
  async start(args) {
    const specs = args.specs as SubscriberSpec[];
    const startSeqs = args.startSeqs as Map<string, bigint>;
    for (const spec of specs) {
      subs.push(
        new InProcessSubscriber({
          serverPort: args.serverPort as number,
          silenceTimeoutMs: args.silenceTimeoutMs as number,
          startSeqs,
          ...spec,
        }),
      );
      // Spread the connections out a little: hundreds of handshakes in one tick only measure the accept queue.
      await sleep(2);
    }
    await Promise.all(subs.map((s) => s.ready));
    return subs.length;
  },
  hit(args) {
    subs[args.index as number]?.hit(args.kind as ChaosKind);
  },
  status: () => report(),
  async finish(args) {
    const published = args.published as Map<string, bigint>;
    const deadline = Date.now() + (args.timeoutMs as number);
    const behindNow = (): number => subs.filter((s) => !s.check.caughtUp(published, (t) => matches(s.topic, t))).length;
    while (behindNow() > 0 && Date.now() < deadline) await sleep(100);
    const behind = behindNow();
    await Promise.all(subs.map((s) => s.stop()));
    const r = report(behind);
    subs = [];
    return r;
  },
  exit: () => {
    setImmediate(() => process.exit(0));
  },
});
emit("ready", { pid: process.pid });
