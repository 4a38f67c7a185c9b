import { describe, expect, it } from "vitest";
import { ConfigError, parseServeArgs } from "../../src/config.js";

describe("tail flags", () => {
  it("--tail-dir is repeatable; the tail bounds parse and default", () => {
    const c = parseServeArgs(["--tail-dir", "/a", "--tail-dir", "/b", "--max-line-bytes", "100", "--tail-partial-flush-ms", "0"], {});
    expect(c.tailDirs).toEqual(["/a", "/b"]);
    expect([c.maxLineBytes, c.tailPartialFlushMs, c.tailPollMs]).toEqual([100, 0, 1_000]);
    expect(parseServeArgs([], { RUNNEL_TAIL_DIR: "/x:/y", RUNNEL_MAX_LINE_BYTES: "4096" })).toMatchObject({ tailDirs: ["/x", "/y"], maxLineBytes: 4096 });
  });

  it("refuses bounds that make no sense", () => {
    expect(() => parseServeArgs(["--max-line-bytes", "8"], {})).toThrow(ConfigError);
    expect(() => parseServeArgs(["--tail-poll-ms", "0"], {})).toThrow(/--tail-poll-ms must be a whole number >= 10/);
  });
});
