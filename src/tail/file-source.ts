/**
 * One followed path, shared by every tailer of it: one `fs.watch` (on the
 * parent directory, so creation, deletion and renames are seen as well as
 * appends) plus a stat poll as the fallback (inotify limits, renames, network
 * filesystems), and one open fd of the file's current generation. It only
 * notices what happened — appended, truncated, rotated, deleted, created —
 * and tells its listeners; each listener reads with pread at its own offset,
 * so a slow tailer never holds back a fast one. Closing is synchronous: the
 * last listener leaving closes the watcher, the timers and the fd at once.
 */
import { fstatSync, readSync, watch, type FSWatcher } from "node:fs";
import path from "node:path";
import type { FileIdentity } from "./cursor.js";
import { closeFile, countWatcher, identityOf, openRegularFile, sameIdentity, statPath } from "./open-file.js";

/** What happened to the followed path. */
export type GenerationChange = "rotated" | "deleted" | "created" | "truncated";

/** A tailer of a source. Callbacks run synchronously from the source's check. */
export interface SourceListener {
  /** The current generation may have grown. */
  changed(): void;
  /** The current generation is about to be closed: read what is left of it now (the fd is still open). */
  ending(): void;
  /** The generation changed; `previousSize` is the size the old one (or the truncated one) had. */
  generation(change: GenerationChange, previousSize: number): void;
}

/** Timing of a source. */
export interface SourceTiming {
  /** Stat poll interval: the fallback when fs.watch misses something. */
  readonly pollMs: number;
  /** After the path stopped naming the open file, how long the old file must stay quiet before it is closed. */
  readonly settleMs: number;
  /** Use fs.watch for promptness (default); false: the stat poll alone (what happens when inotify is exhausted). */
  readonly watch?: boolean;
}

/** The open generation of the file. */
interface Generation {
  readonly fd: number;
  readonly identity: FileIdentity;
  /** Largest size seen: a smaller size means the file was truncated. */
  size: number;
  /** The last bytes before `size` as last seen: different now means the file was truncated and rewritten past its old size. */
  sample: Buffer;
}

/** Bytes compared to notice a truncation the file has already outgrown again. */
const SAMPLE_BYTES = 32;

/** The SAMPLE_BYTES bytes of `fd` before `size`. */
function sampleOf(fd: number, size: number): Buffer {
  const start = Math.max(0, size - SAMPLE_BYTES);
  const b = Buffer.alloc(size - start);
  try {
    readSync(fd, b, 0, b.length, start);
  } catch {
    // unreadable now: the next check compares against zeros and at worst reports a truncation
  }
  return b;
}

/**
 * A shared, reference-counted followed file. Create through SourceRegistry.
 *
 * Normally one generation (one fd) is open. When the path comes to name
 * another file (rotation), that one is opened at once — so a file rotated
 * again quickly is not missed — while the old one stays open until it has
 * been quiet for `settleMs` (its writer may still append to it); listeners
 * finish the old one before they move on.
 */
export class FileSource {
  private readonly listeners = new Set<SourceListener>();
  /** Open generations, oldest first: listeners read the first; the last is what the path names (when it names one). */
  private readonly generations: Generation[] = [];
  private watcher: FSWatcher | undefined;
  private readonly poll: NodeJS.Timeout;
  private settleTimer: NodeJS.Timeout | undefined;
  private scheduled: NodeJS.Immediate | undefined;
  /** When the first generation last grew, or stopped being what the path names. */
  private lastChangeMs = 0;
  private retiring = false;
  private closed = false;

  constructor(
    /** Absolute real path. */
    readonly path: string,
    private readonly timing: SourceTiming,
    private readonly onClosed: (source: FileSource) => void,
  ) {
    const first = this.openPath();
    if (first !== undefined) this.generations.push(first);
    if (timing.watch !== false) this.startWatching();
    this.poll = setInterval(() => this.check(), timing.pollMs);
    this.poll.unref();
  }

  /** Whether a generation is open for reading. */
  get exists(): boolean {
    return this.generations.length > 0;
  }

  /** The generation listeners read, if any. */
  get identity(): FileIdentity | undefined {
    return this.generations[0]?.identity;
  }

  /** Size of the generation listeners read, now (0 when none). */
  size(): number {
    const g = this.generations[0];
    if (g === undefined) return 0;
    try {
      return fstatSync(g.fd).size;
    } catch {
      return 0;
    }
  }

  get watching(): boolean {
    return this.watcher !== undefined;
  }

  /** Files this source has open now (more than one only while a rotation settles). */
  get openFiles(): number {
    return this.generations.length;
  }

  /** Read from the generation listeners read, at `position`; 0 at its end or when none is open. */
  read(buffer: Buffer, position: number, length = buffer.length): number {
    const g = this.generations[0];
    if (g === undefined) return 0;
    return readSync(g.fd, buffer, 0, length, position);
  }

  add(listener: SourceListener): void {
    this.listeners.add(listener);
  }

  /** Remove a listener; the last one leaving closes everything, synchronously. */
  remove(listener: SourceListener): void {
    if (!this.listeners.delete(listener) || this.listeners.size > 0) return;
    this.close();
  }

  /** Look at the path and the open file now (also called on every watch event, coalesced). */
  check(): void {
    if (this.closed) return;
    const nowMs = Date.now();
    const named = statPath(this.path);
    const newest = this.generations.at(-1);
    if (named !== undefined && named.isFile() && (newest === undefined || !sameIdentity(named, newest.identity))) {
      const opened = this.openPath();
      if (opened !== undefined) {
        this.generations.push(opened);
        if (this.generations.length === 1) {
          this.tell("created", 0);
          return;
        }
      }
    }
    const head = this.generations[0];
    if (head === undefined) return;
    this.checkGrowth(head, nowMs);
    if (named !== undefined && sameIdentity(named, head.identity)) {
      this.retiring = false;
      return;
    }
    // The path no longer names the file being read. Its writer may still append for a moment
    // (a logger that reopens after rotating): keep it until it has been quiet for settleMs.
    if (!this.retiring) {
      this.retiring = true;
      this.lastChangeMs = nowMs;
    }
    const quietFor = nowMs - this.lastChangeMs;
    if (quietFor < this.timing.settleMs) {
      this.armSettle(this.timing.settleMs - quietFor);
      return;
    }
    this.retireHead(head);
    if (this.generations.length > 0) this.check(); // the next one may have grown, or be retiring too
  }

  /** Tell listeners about growth or truncation of the generation they read. */
  private checkGrowth(g: Generation, nowMs: number): void {
    let size: number;
    try {
      size = fstatSync(g.fd).size;
    } catch {
      return;
    }
    if (size < g.size || (size > g.size && !sampleOf(g.fd, g.size).equals(g.sample))) {
      const before = g.size;
      g.size = size;
      g.sample = sampleOf(g.fd, size);
      this.lastChangeMs = nowMs;
      this.tell("truncated", before);
    } else if (size > g.size) {
      g.size = size;
      g.sample = sampleOf(g.fd, size);
      this.lastChangeMs = nowMs;
      for (const l of this.listeners) l.changed();
    }
  }

  /** Close the generation being read (after its listeners read the rest) and move to the next, if any. */
  private retireHead(g: Generation): void {
    for (const l of this.listeners) l.ending();
    let deleted = false;
    try {
      deleted = fstatSync(g.fd).nlink === 0;
    } catch {
      deleted = true;
    }
    this.generations.shift();
    this.closeFd(g);
    this.retiring = false;
    this.lastChangeMs = Date.now();
    const next = this.generations.length > 0;
    if (deleted) {
      this.tell("deleted", g.size);
      if (next) this.tell("created", 0);
    } else {
      this.tell("rotated", g.size);
    }
  }

  private tell(change: GenerationChange, previousSize: number): void {
    for (const l of this.listeners) l.generation(change, previousSize);
  }

  /** Open what the path names now, if it is a regular file. */
  private openPath(): Generation | undefined {
    const opened = openRegularFile(this.path);
    if (opened === undefined) return undefined;
    const size = Number(opened.stats.size);
    return { fd: opened.fd, identity: identityOf(opened.stats), size, sample: sampleOf(opened.fd, size) };
  }

  private closeFd(g: Generation): void {
    closeFile(g.fd);
  }

  private startWatching(): void {
    const base = path.basename(this.path);
    try {
      this.watcher = watch(path.dirname(this.path), { persistent: false }, (_event, name) => {
        if (name !== null && name !== base) return;
        this.scheduled ??= setImmediate(() => {
          this.scheduled = undefined;
          this.check();
        });
      });
    } catch {
      return; // inotify limit or the like: the stat poll still follows the file
    }
    countWatcher(1);
    this.watcher.on("error", () => this.stopWatching());
  }

  private stopWatching(): void {
    if (this.watcher === undefined) return;
    this.watcher.close();
    this.watcher = undefined;
    countWatcher(-1);
  }

  private armSettle(ms: number): void {
    if (this.settleTimer !== undefined) return;
    this.settleTimer = setTimeout(() => {
      this.settleTimer = undefined;
      this.check();
    }, Math.max(1, ms));
    this.settleTimer.unref();
  }

  private close(): void {
    if (this.closed) return;
    this.closed = true;
    this.stopWatching();
    clearInterval(this.poll);
    if (this.settleTimer !== undefined) clearTimeout(this.settleTimer);
    if (this.scheduled !== undefined) clearImmediate(this.scheduled);
    for (const g of this.generations.splice(0)) this.closeFd(g);
    this.onClosed(this);
  }
}
