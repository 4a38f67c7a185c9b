import { Code, ConnectError } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { causeOfClientAbort } from "../../src/stream/end-cause.js";

const canceled = new ConnectError("x", Code.Canceled);

describe("causeOfClientAbort", () => {
  it("keepalive's verdict wins", () => {
    expect(causeOfClientAbort(canceled, { peerDead: true, connectionLost: true })).toBe("dead_peer");
  });
  it("the server's deadline, or a client leaving within the slack before it, is a deadline", () => {
    expect(causeOfClientAbort(new ConnectError("x", Code.DeadlineExceeded), { peerDead: false })).toBe("deadline");
    expect(causeOfClientAbort(undefined, { peerDead: false, deadlineMs: 5_000, remainingMs: 300 })).toBe("deadline");
    // Half the deadline bounds the slack: 150 ms left of a 200 ms deadline is not "at the deadline".
    expect(causeOfClientAbort(canceled, { peerDead: false, deadlineMs: 200, remainingMs: 150 })).toBe("canceled");
    expect(causeOfClientAbort(canceled, { peerDead: false, deadlineMs: 60_000, remainingMs: 30_000 })).toBe("canceled");
  });
  it("a lost connection is a disconnect even when node reports CANCEL for its streams", () => {
    expect(causeOfClientAbort(canceled, { peerDead: false, connectionLost: true })).toBe("disconnect");
  });
  it("an HTTP/2 cancel is canceled; anything else is a disconnect", () => {
    expect(causeOfClientAbort(canceled, { peerDead: false })).toBe("canceled");
    expect(causeOfClientAbort(new DOMException("aborted", "AbortError"), { peerDead: false })).toBe("disconnect");
  });
});
