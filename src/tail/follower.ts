/**
 * One tailer of a shared FileSource: reads the file with pread at its own
 * offset, splits lines, filters them, and hands them to its sink while the
 * sink has room (the file is the buffer; reading resumes when the sink
 * drains). It never waits on anything: it is woken by the source (the file
 * changed) or by the sink (room again), and `close()` detaches it and clears
 * its timers synchronously — the last follower of a source closing the
 * watcher and the fd with it.
 */
import { encodeTailCursor, sameFile, type TailPosition } from "./cursor.js";
import type { FileSource, GenerationChange, SourceListener } from "./file-source.js";
import { closeRotated, openRotated, type RotatedFile } from "./rotated-file.js";
import { readSync } from "node:fs";
import { LineSplitter, type SplitLine } from "./line-splitter.js";

/** What a follower reports; the service turns these into messages. */
export interface FollowerSink {
  line(line: SplitLine, cursor: string): void;
  fileEvent(kind: GenerationChange | "lost", message: string, cursor: string, lostBytes: number): void;
  hasRoom(): boolean;
  /** The follower fell further behind than allowed while the sink stayed full. */
  overflow(lagBytes: number): void;
  /** A non-following tail reached the end it was asked for. */
  done(): void;
}

/** How a follower reads. */
export interface FollowerOptions {
  readonly maxLineBytes: number;
  readonly grep: RegExp | undefined;
  /** A partial last line is sent (marked) after this long without new bytes; 0 never. */
  readonly partialFlushMs: number;
  /** Most unread bytes allowed while the sink is full before the follower is a slow consumer. */
  readonly maxLagBytes: number;
  /** Stop at the end the file has when the follower starts (no follow). */
  readonly follow: boolean;
}

/** Bytes read per pread. */
const CHUNK = 64 * 1024;
/** How far back the last-lines scan looks for the start of one overlong line before starting inside it. */
const LONG_LINE_SCAN = 1024 * 1024;
/** Bytes read in one turn of the event loop before yielding to others. */
const TURN_BUDGET = 1024 * 1024;

const scratch = Buffer.allocUnsafe(CHUNK);

/** Where a tailer starts in the file a source has open. */
export type StartAt = { readonly kind: "last"; readonly lines: number } | { readonly kind: "after"; readonly position: TailPosition };

/** A tailer of one source. */
export class Follower implements SourceListener {
  private source: FileSource | undefined;
  private splitter: LineSplitter;
  private partialTimer: NodeJS.Timeout | undefined;
  private partialAt = -1;
  private continuation: NodeJS.Immediate | undefined;
  /** For follow = false: where to stop (the size when the follower started). */
  private stopAt = Infinity;
  private finished = false;
  /** A resumed cursor's generation, found under another name after a rotation: read to its end first. */
  private rotated: RotatedFile | undefined;
  private readonly emitLine = (line: SplitLine): boolean => this.offer(line);

  constructor(
    private readonly sink: FollowerSink,
    private readonly options: FollowerOptions,
  ) {
    this.splitter = new LineSplitter(options.maxLineBytes);
  }

  /** Listen to `source` (taken from a SourceRegistry; `close()` gives it back). */
  attach(source: FileSource): void {
    if (this.finished) source.remove(this);
    else this.source = source;
  }

  /** Position the reader and read what is there; returns the cursor of the starting point. */
  start(at: StartAt): string {
    const source = this.source;
    if (source === undefined) return "";
    const id = source.identity;
    if (at.kind === "after" && (id === undefined || !sameFile(at.position.file, id))) {
      // The cursor's generation is not at the path any more; it may still exist under another name.
      const rotated = openRotated(source.path, at.position.file);
      if (rotated !== undefined && at.position.offset <= rotated.size) {
        this.rotated = rotated;
        this.splitter.reset(at.position.offset);
        this.pump();
        return encodeTailCursor(at.position);
      }
      if (rotated !== undefined) closeRotated(rotated);
    }
    if (id === undefined) {
      if (at.kind === "after") this.sink.fileEvent("lost", "the file of the cursor no longer exists; following waits for it", "", 0);
      if (!this.options.follow) this.finish();
      return "";
    }
    const size = source.size();
    let offset: number;
    if (at.kind === "last") offset = this.lastLinesStart(size, at.lines);
    else if (!sameFile(at.position.file, id)) {
      offset = 0;
      this.sink.fileEvent("lost", "the file generation of the cursor is gone (rotated away and removed, or replaced); lines after the cursor may be lost; starting at the beginning of the current file", encodeTailCursor({ file: id, offset: 0 }), 0);
    } else if (at.position.offset > size) {
      offset = 0;
      this.sink.fileEvent("lost", `the file is shorter than the cursor (truncated to ${size} bytes); starting at its beginning`, encodeTailCursor({ file: id, offset: 0 }), at.position.offset - size);
    } else offset = at.position.offset;
    this.splitter.reset(offset);
    if (!this.options.follow) this.stopAt = size;
    this.pump();
    return encodeTailCursor({ file: id, offset });
  }

  /** Room in the sink again: read on. */
  resume(): void {
    this.pump();
  }

  changed(): void {
    if (this.rotated === undefined) this.pump();
  }

  ending(): void {
    if (this.finished || this.source === undefined || this.rotated !== undefined) return;
    // The rest of the old generation is read now, whatever the sink's room (up to the lag bound;
    // past it, or past the queue's bound, the stream ends as a slow consumer with its resume cursor).
    const lag = this.source.size() - this.splitter.position;
    if (lag > this.options.maxLagBytes) {
      this.sink.overflow(lag);
      return;
    }
    this.readToEnd();
    const line = this.splitter.flushPartial();
    if (line !== undefined) this.offer(line, true);
  }

  generation(change: GenerationChange, previousSize: number): void {
    const source = this.source;
    // While a rotated generation is being finished, the path's changes do not concern this tailer yet.
    if (source === undefined || this.finished || this.rotated !== undefined) return;
    const id = source.identity;
    const cursor = id === undefined ? "" : encodeTailCursor({ file: id, offset: 0 });
    const lost = change === "truncated" ? Math.max(0, previousSize - this.splitter.position) : 0;
    this.sink.fileEvent(change, describe(change, source, lost), cursor, lost);
    this.splitter.reset(0);
    this.pump();
  }

  /** Detach from the source (closing it if this was the last tailer) and clear timers. Idempotent. */
  close(): void {
    this.finished = true;
    this.clearPartialTimer();
    if (this.continuation !== undefined) clearImmediate(this.continuation);
    this.continuation = undefined;
    if (this.rotated !== undefined) closeRotated(this.rotated);
    this.rotated = undefined;
    const source = this.source;
    this.source = undefined;
    source?.remove(this);
  }

  /** Read while the sink has room, up to a budget per turn. */
  private pump(): void {
    if (this.finished || this.source === undefined) return;
    let budget = TURN_BUDGET;
    while (budget > 0) {
      if (!this.sink.hasRoom()) {
        this.checkLag();
        return;
      }
      const n = this.readChunk();
      if (n < 0) return; // the sink filled mid-chunk
      if (n === 0) {
        this.atEnd();
        return;
      }
      budget -= n;
    }
    this.continuation ??= setImmediate(() => {
      this.continuation = undefined;
      this.pump();
    });
  }

  /** Read everything left of the open generation, ignoring the sink's room. */
  private readToEnd(): void {
    while (!this.finished && this.source !== undefined) {
      if (this.readChunk(true) <= 0) return;
    }
  }

  /** One pread and split: bytes consumed, 0 at the end, -1 when the sink filled before the chunk was used up. */
  private readChunk(force = false): number {
    const source = this.source!;
    const position = this.splitter.position;
    const rotated = this.rotated;
    const want = Math.min(CHUNK, rotated !== undefined ? CHUNK : this.stopAt - position);
    if (want <= 0) return 0;
    let n: number;
    try {
      n = rotated !== undefined ? readSync(rotated.fd, scratch, 0, want, position) : source.read(scratch, position, want);
    } catch {
      return 0; // the fd went away under us: the source's next check says what happened
    }
    if (n === 0) return 0;
    const used = this.splitter.push(scratch.subarray(0, n), force ? (line) => this.offer(line, true) : this.emitLine);
    return used < n ? -1 : n;
  }

  /** Hand a line to the sink (after grep); false when the sink has no more room. */
  private offer(line: SplitLine, force = false): boolean {
    const id = this.rotated?.identity ?? this.source?.identity;
    if (id === undefined) return false;
    if (this.options.grep === undefined || this.options.grep.test(line.text)) {
      this.sink.line(line, encodeTailCursor({ file: id, offset: line.end }));
    }
    return force || this.sink.hasRoom();
  }

  private atEnd(): void {
    if (this.rotated !== undefined) {
      this.leaveRotated();
      return;
    }
    if (this.splitter.position >= this.stopAt) {
      const line = this.splitter.flushPartial();
      if (line !== undefined) this.offer(line, true);
      this.finish();
      return;
    }
    if (this.splitter.hasPartial && this.options.partialFlushMs > 0) this.armPartialTimer();
  }

  /** The resumed rotated generation is read to its end: move on to what the path names now. */
  private leaveRotated(): void {
    const line = this.splitter.flushPartial();
    if (line !== undefined) this.offer(line, true);
    closeRotated(this.rotated!);
    this.rotated = undefined;
    const source = this.source!;
    const id = source.identity;
    this.sink.fileEvent("rotated", "the rest of the rotated file was sent; following the current file from its start", id === undefined ? "" : encodeTailCursor({ file: id, offset: 0 }), 0);
    this.splitter.reset(0);
    if (!this.options.follow) this.stopAt = source.size();
    if (id === undefined && !this.options.follow) {
      this.finish();
      return;
    }
    this.pump();
  }

  private armPartialTimer(): void {
    const at = this.splitter.position;
    if (this.partialTimer !== undefined && this.partialAt === at) return;
    this.clearPartialTimer();
    this.partialAt = at;
    this.partialTimer = setTimeout(() => {
      this.partialTimer = undefined;
      // Quiet means no byte arrived after the partial line: not merely that this follower is behind.
      if (this.finished || this.splitter.position !== at || this.source?.size() !== at || !this.sink.hasRoom()) return;
      const line = this.splitter.flushPartial();
      if (line !== undefined) this.offer(line, true);
    }, this.options.partialFlushMs);
    this.partialTimer.unref();
  }

  private clearPartialTimer(): void {
    if (this.partialTimer !== undefined) clearTimeout(this.partialTimer);
    this.partialTimer = undefined;
  }

  private checkLag(): void {
    const size = this.rotated?.size ?? this.source?.size() ?? 0;
    const lag = size - this.splitter.position;
    if (lag > this.options.maxLagBytes) this.sink.overflow(lag);
  }

  private finish(): void {
    if (this.finished) return;
    this.finished = true;
    this.sink.done();
  }

  /** Offset where the last `lines` lines before `size` start (bounded scan backwards). */
  private lastLinesStart(size: number, lines: number): number {
    if (lines === 0 || size === 0) return size;
    const limit = Math.max(0, size - lines * (this.options.maxLineBytes + 1));
    let end = size;
    let newlines = 0;
    // A newline as the file's last byte ends the last line; it does not start another.
    let skipLast = true;
    while (end > limit) {
      const start = Math.max(limit, end - CHUNK);
      const n = this.source!.read(scratch, start, end - start);
      for (let i = n - 1; i >= 0; i--) {
        if (scratch[i] !== 0x0a) continue;
        if (skipLast && start + i === size - 1) continue;
        newlines++;
        if (newlines === lines) return start + i + 1;
      }
      skipLast = false;
      end = start;
    }
    if (limit === 0) return 0;
    // The scan bound fell inside a line longer than --max-line-bytes: as tail does, that line is still one
    // of the last lines. Find its start (bounded further scan); the splitter then cuts it and marks it.
    return this.lineStartBefore(limit);
  }

  /** Start of the line that holds `offset`, looking back at most LONG_LINE_SCAN bytes (else `offset` itself). */
  private lineStartBefore(offset: number): number {
    const floor = Math.max(0, offset - LONG_LINE_SCAN);
    for (let end = offset; end > floor; ) {
      const start = Math.max(floor, end - CHUNK);
      const n = this.source!.read(scratch, start, end - start);
      const nl = scratch.subarray(0, n).lastIndexOf(0x0a);
      if (nl !== -1) return start + nl + 1;
      end = start;
    }
    return floor === 0 ? 0 : offset;
  }
}

function describe(change: GenerationChange, source: FileSource, lost: number): string {
  switch (change) {
    case "rotated":
      return source.exists ? "file rotated: following the new file from its start" : "file renamed away: waiting for a new file";
    case "deleted":
      return "file deleted: waiting for it to be created again";
    case "created":
      return "file created: following it from its start";
    case "truncated":
      return `file truncated: following from its start${lost > 0 ? ` (${lost} unread bytes lost)` : ""}`;
  }
}
