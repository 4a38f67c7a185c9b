import { describe, expect, it } from "vitest";
import { LineSplitter, type SplitLine } from "../../src/tail/line-splitter.js";

function split(max: number, chunks: (string | Buffer)[]): { lines: SplitLine[]; splitter: LineSplitter } {
  const splitter = new LineSplitter(max);
  const lines: SplitLine[] = [];
  for (const c of chunks) splitter.push(typeof c === "string" ? Buffer.from(c) : c, (l) => (lines.push(l), true));
  return { lines, splitter };
}

describe("LineSplitter", () => {
  it("cuts lines at newlines with exact offsets, across chunk boundaries", () => {
    const { lines, splitter } = split(100, ["ab\ncd", "e\n\nf", "g\n"]);
    expect(lines.map((l) => [l.text, l.offset, l.end])).toEqual([
      ["ab", 0, 3],
      ["cde", 3, 7],
      ["", 7, 8],
      ["fg", 8, 11],
    ]);
    expect(splitter.hasPartial).toBe(false);
    expect(lines.every((l) => !l.truncated && !l.replaced && !l.partial)).toBe(true);
  });

  it("holds a partial line until its newline, or flushes it marked and continues after it", () => {
    const { lines, splitter } = split(100, ["one\ntw"]);
    expect(lines.map((l) => l.text)).toEqual(["one"]);
    expect(splitter.hasPartial).toBe(true);
    const p = splitter.flushPartial()!;
    expect([p.text, p.offset, p.end, p.partial]).toEqual(["tw", 4, 6, true]);
    const rest: SplitLine[] = [];
    splitter.push(Buffer.from("o\n"), (l) => (rest.push(l), true));
    expect(rest.map((l) => [l.text, l.offset, l.end, l.partial])).toEqual([["o", 6, 8, false]]);
  });

  it("cuts lines over the bound at a character boundary, marks them, and skips the rest up to the newline", () => {
    // "é" is two bytes: a cut at 5 bytes would split the third one.
    const { lines } = split(5, ["ééé", "éééé\nok\n"]);
    expect(lines.map((l) => [l.text, l.truncated, l.offset, l.end])).toEqual([
      ["éé", true, 0, 15],
      ["ok", false, 15, 18],
    ]);
  });

  it("a line of exactly the bound is whole", () => {
    const { lines } = split(4, ["abcd\nabcde\n"]);
    expect(lines.map((l) => [l.text, l.truncated])).toEqual([
      ["abcd", false],
      ["abcd", true],
    ]);
  });

  it("never buffers more than the bound for a huge line (10 MB without a newline)", () => {
    const splitter = new LineSplitter(1024);
    const chunk = Buffer.alloc(64 * 1024, 0x61);
    for (let i = 0; i < 160; i++) splitter.push(chunk, () => true);
    const p = splitter.flushPartial()!;
    expect(p.text.length).toBe(1024);
    expect(p.truncated).toBe(true);
    // The rest of the cut line is dropped, the next line comes whole.
    const after: SplitLine[] = [];
    splitter.push(Buffer.from("aaaa\nnext\n"), (l) => (after.push(l), true));
    expect(after.map((l) => l.text)).toEqual(["next"]);
  });

  it("replaces invalid UTF-8 and says so; a literal U+FFFD is not a replacement", () => {
    const { lines } = split(100, [Buffer.from([0x61, 0xff, 0xfe, 0x62, 0x0a]), "\uFFFD ok\n"]);
    expect(lines.map((l) => [l.text, l.replaced])).toEqual([
      ["a\uFFFD\uFFFDb", true],
      ["\uFFFD ok", false],
    ]);
  });

  it("stops when emit says so and reports the bytes used", () => {
    const splitter = new LineSplitter(100);
    const seen: string[] = [];
    const used = splitter.push(Buffer.from("a\nb\nc\n"), (l) => (seen.push(l.text), seen.length < 2));
    expect(seen).toEqual(["a", "b"]);
    expect(used).toBe(4);
    expect(splitter.position).toBe(4);
  });
});

describe("LineSplitter and reused read buffers", () => {
  it("a line split across two reads into the same buffer comes out whole", () => {
    const splitter = new LineSplitter(100);
    const buffer = Buffer.alloc(8);
    const lines: string[] = [];
    for (const part of ["hello wo", "rld\nnext", "\n"]) {
      buffer.write(part.padEnd(8, "\0"));
      splitter.push(buffer.subarray(0, part.length), (l) => (lines.push(l.text), true));
    }
    expect(lines).toEqual(["hello world", "next"]);
  });
});
