import { describe, expect, it } from "vitest";
import { decodeTailCursor, encodeTailCursor, sameFile } from "../../src/tail/cursor.js";

describe("tail cursors", () => {
  it("round-trip file identity and offset", () => {
    const p = { file: { dev: 2049n, ino: 123456789012n, birthNs: 1763900000123456789n }, offset: 987654321 };
    const c = encodeTailCursor(p);
    expect(decodeTailCursor(c)).toEqual(p);
    expect(sameFile(decodeTailCursor(c)!.file, p.file)).toBe(true);
    expect(sameFile(p.file, { ...p.file, birthNs: 1n })).toBe(false);
  });

  it("reject what runnel did not issue", () => {
    for (const bad of ["", "x", "t1.", "t1.!!!", `t1.${Buffer.from("1.2.3").toString("base64url")}`, `t1.${Buffer.from("1.2.3.-4").toString("base64url")}`, "c1.abc"]) {
      expect(decodeTailCursor(bad), bad).toBeUndefined();
    }
  });
});
