import { describe, expect, it } from "vitest";
import { HeartbeatWheel } from "../../src/stream/heartbeat-wheel.js";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe("HeartbeatWheel", () => {
  it("runs one timer per interval for any number of members, and none once they leave", async () => {
    const wheel = new HeartbeatWheel();
    const beats = new Map<string, number>();
    const member = (name: string) => ({ beat: () => void beats.set(name, (beats.get(name) ?? 0) + 1) });
    const a = wheel.add(40, member("a"));
    const b = wheel.add(40, member("b"));
    const c = wheel.add(200, member("c"));
    expect({ size: wheel.size, timers: wheel.timers }).toEqual({ size: 3, timers: 2 });
    await sleep(150);
    expect(beats.get("a")).toBeGreaterThanOrEqual(3); // ticks every 10 ms; generous lower bound only
    expect(beats.get("b")).toBeGreaterThanOrEqual(3);
    a.close();
    a.close(); // idempotent
    b.close();
    expect({ size: wheel.size, timers: wheel.timers }).toEqual({ size: 1, timers: 1 });
    c.close();
    expect({ size: wheel.size, timers: wheel.timers }).toEqual({ size: 0, timers: 0 });
    const before = beats.get("a");
    await sleep(60);
    expect(beats.get("a")).toBe(before);
  });
});
