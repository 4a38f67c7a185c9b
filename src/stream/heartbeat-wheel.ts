/**
 * One timer per heartbeat interval for all streams, instead of a timer (and
 * a closure) per stream: an idle stream costs a Set entry here. Each tick asks
 * every member whether it owes its client a heartbeat; a member sends one
 * when nothing was written for its interval, so heartbeats arrive every
 * interval to interval + a quarter of it while a stream is idle.
 */
import type { Releasable } from "./scope.js";

/** A stream that may owe its client a heartbeat. */
export interface Beating {
  beat(nowMs: number): void;
}

class Group {
  readonly members = new Set<Beating>();
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly intervalMs: number) {}

  add(member: Beating): void {
    this.members.add(member);
    if (this.timer === undefined) {
      this.timer = setInterval(() => this.tick(), Math.max(5, Math.floor(this.intervalMs / 4)));
      this.timer.unref();
    }
  }

  remove(member: Beating): boolean {
    this.members.delete(member);
    if (this.members.size > 0) return false;
    clearInterval(this.timer);
    this.timer = undefined;
    return true;
  }

  private tick(): void {
    const now = Date.now();
    for (const m of this.members) m.beat(now);
  }
}

class Membership implements Releasable {
  constructor(
    private readonly wheel: HeartbeatWheel,
    private readonly intervalMs: number,
    private readonly member: Beating,
  ) {}

  close(): void {
    this.wheel.remove(this.intervalMs, this.member);
  }
}

/** Heartbeat groups by interval. */
export class HeartbeatWheel {
  private readonly groups = new Map<number, Group>();

  /** Members in all groups (for tests and metrics). */
  get size(): number {
    let n = 0;
    for (const g of this.groups.values()) n += g.members.size;
    return n;
  }

  /** Timers running: one per distinct interval in use. */
  get timers(): number {
    return this.groups.size;
  }

  /** Start asking `member` for heartbeats every `intervalMs`; close the result to stop. */
  add(intervalMs: number, member: Beating): Releasable {
    let group = this.groups.get(intervalMs);
    if (group === undefined) {
      group = new Group(intervalMs);
      this.groups.set(intervalMs, group);
    }
    group.add(member);
    return new Membership(this, intervalMs, member);
  }

  /** @internal */
  remove(intervalMs: number, member: Beating): void {
    const group = this.groups.get(intervalMs);
    if (group !== undefined && group.remove(member)) this.groups.delete(intervalMs);
  }
}

/** The process-wide wheel streams use. */
export const heartbeats = new HeartbeatWheel();
