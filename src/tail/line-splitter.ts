/**
 * Bytes of a file into lines, the way a log reader needs it: a bound on line
 * length (longer lines are cut at a character boundary and marked, the rest
 * skipped up to the newline, never buffered), invalid UTF-8 replaced and
 * marked, and a partial last line held until its newline or flushed on
 * request. Every line knows the byte offset where it starts and the offset
 * right after it (its cursor), so a reader can resume exactly there.
 */
import { isUtf8 } from "node:buffer";

/** One line cut from a file. */
export interface SplitLine {
  readonly text: string;
  /** Offset of the line's first byte. */
  readonly offset: number;
  /** Offset right after the line (after its newline; for a flushed partial line, after its last byte). */
  readonly end: number;
  readonly truncated: boolean;
  readonly replaced: boolean;
  readonly partial: boolean;
}

const NEWLINE = 0x0a;

/** Decode bytes as UTF-8, replacing invalid sequences; says whether anything was replaced. */
function decode(bytes: Buffer): { text: string; replaced: boolean } {
  const text = bytes.toString("utf8");
  // U+FFFD in the output is either a replacement or a literal one in the file: only then ask isUtf8.
  return { text, replaced: text.includes("\uFFFD") && !isUtf8(bytes) };
}

/** The largest cut <= max that does not split a UTF-8 character of `bytes` (bytes.length > max). */
function charBoundary(bytes: Buffer, max: number): number {
  let cut = max;
  // A continuation byte (10xxxxxx) at the cut means the character started before it.
  while (cut > 0 && cut > max - 4 && (bytes[cut]! & 0xc0) === 0x80) cut--;
  return (bytes[cut]! & 0xc0) === 0x80 ? max : cut;
}

/** Splits one file generation's bytes into lines; one per reader. */
export class LineSplitter {
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  /** Offset where the line being assembled starts. */
  private lineStart: number;
  /** Offset of the next byte to be pushed. */
  private next: number;
  /** The current line went over the bound and was cut: bytes are skipped up to its newline. */
  private skipping = false;
  /** The cut line was already emitted (a partial flush); its remainder is dropped silently. */
  private cutEmitted = false;

  constructor(
    private readonly maxLineBytes: number,
    offset = 0,
  ) {
    this.lineStart = offset;
    this.next = offset;
  }

  /** Offset of the next byte expected. */
  get position(): number {
    return this.next;
  }

  /** Whether bytes of an unfinished line are held. */
  get hasPartial(): boolean {
    return this.next > this.lineStart;
  }

  /** Start over at `offset` (a new generation, or after truncation). */
  reset(offset: number): void {
    this.pending = [];
    this.pendingBytes = 0;
    this.lineStart = offset;
    this.next = offset;
    this.skipping = false;
    this.cutEmitted = false;
  }

  /**
   * Feed the bytes that follow `position`; `emit` gets every line completed by
   * them and returns false to stop early. Returns how many bytes were used:
   * the caller feeds the rest (from `position`) again later.
   */
  push(chunk: Buffer, emit: (line: SplitLine) => boolean): number {
    let from = 0;
    while (from < chunk.length) {
      const nl = chunk.indexOf(NEWLINE, from);
      const stop = nl === -1 ? chunk.length : nl;
      // A line that continues past this chunk is copied: the caller reuses the chunk's memory.
      this.hold(chunk, from, stop, nl === -1);
      if (nl === -1) {
        this.next += chunk.length - from;
        return chunk.length;
      }
      this.next += nl + 1 - from;
      from = nl + 1;
      const line = this.finishLine(this.next, false);
      if (line !== undefined && !emit(line)) return from;
    }
    return chunk.length;
  }

  /** Emit the held partial line now (a quiet period passed); undefined when none is held. */
  flushPartial(): SplitLine | undefined {
    if (!this.hasPartial) return undefined;
    const wasSkipping = this.skipping;
    const line = this.finishLine(this.next, true);
    // The rest of a cut line is still to be skipped when it arrives.
    if (wasSkipping) {
      this.skipping = true;
      this.cutEmitted = true;
    }
    return line;
  }

  /** Keep bytes [from, stop) of `chunk` as part of the current line, up to the bound. */
  private hold(chunk: Buffer, from: number, stop: number, copy: boolean): void {
    if (this.skipping || stop === from) return;
    const room = this.maxLineBytes + 4 - this.pendingBytes; // a few bytes more to find a character boundary
    const take = Math.min(room, stop - from);
    // A slice, not a copy, when the line ends inside this chunk (the common case).
    const piece = chunk.subarray(from, from + take);
    this.pending.push(copy ? Buffer.from(piece) : piece);
    this.pendingBytes += take;
    if (this.pendingBytes > this.maxLineBytes) this.skipping = true;
  }

  private finishLine(end: number, partial: boolean): SplitLine | undefined {
    const offset = this.lineStart;
    const cutEmitted = this.cutEmitted;
    let bytes = this.pending.length === 1 ? this.pending[0]! : Buffer.concat(this.pending, this.pendingBytes);
    const truncated = this.skipping;
    this.pending = [];
    this.pendingBytes = 0;
    this.lineStart = end;
    this.skipping = false;
    this.cutEmitted = false;
    if (cutEmitted) return undefined; // the remainder of a cut line already sent as partial
    if (truncated) bytes = bytes.subarray(0, charBoundary(bytes, this.maxLineBytes));
    const { text, replaced } = decode(bytes);
    return { text, offset, end, truncated, replaced, partial };
  }
}
