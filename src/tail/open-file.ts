/**
 * Opening followed files safely, and counting what is open: regular files
 * only, never through a symlink (O_NOFOLLOW), never blocking (O_NONBLOCK: a
 * FIFO swapped in would otherwise block the open), checked again on the fd
 * after opening. Every watcher and fd tail holds is counted here, so tests
 * can assert both are back to zero.
 */
import { closeSync, constants, fstatSync, openSync, statSync, type BigIntStats } from "node:fs";
import type { FileIdentity } from "./cursor.js";

const OPEN_FLAGS = constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK;

/** Watchers and fds held by tail in this process. */
const held = { watchers: 0, openFiles: 0 };

/** Tail watchers and open files held right now in this process (a copy). */
export function tailHeld(): { watchers: number; openFiles: number } {
  return { ...held };
}

/** Count a watcher opened (+1) or closed (-1). */
export function countWatcher(delta: 1 | -1): void {
  held.watchers += delta;
}

/** The identity of a file generation from its stats. */
export function identityOf(s: BigIntStats): FileIdentity {
  return { dev: s.dev, ino: s.ino, birthNs: s.birthtimeNs };
}

/** Whether `s` describes the generation `id`. */
export function sameIdentity(s: BigIntStats, id: FileIdentity): boolean {
  return s.dev === id.dev && s.ino === id.ino && s.birthtimeNs === id.birthNs;
}

/** stat (following symlinks); undefined when missing or not statable now. */
export function statPath(p: string): BigIntStats | undefined {
  try {
    return statSync(p, { bigint: true, throwIfNoEntry: false });
  } catch {
    return undefined; // ELOOP, EACCES...: not followable right now
  }
}

/** An open regular file. */
export interface OpenFile {
  readonly fd: number;
  readonly stats: BigIntStats;
}

/** Open `p` if it is a regular file (checked on the fd); counted until `closeFile`. */
export function openRegularFile(p: string): OpenFile | undefined {
  let fd: number;
  try {
    fd = openSync(p, OPEN_FLAGS);
  } catch {
    return undefined; // missing, a symlink (O_NOFOLLOW), unreadable: not followable now
  }
  let stats: BigIntStats | undefined;
  try {
    stats = fstatSync(fd, { bigint: true });
  } catch {
    stats = undefined;
  }
  // Re-checked on the open fd (the path may have been swapped since it was resolved).
  if (stats === undefined || !stats.isFile()) {
    closeSync(fd);
    return undefined;
  }
  held.openFiles++;
  return { fd, stats };
}

/** Close a file opened by `openRegularFile`. */
export function closeFile(fd: number): void {
  held.openFiles--;
  try {
    closeSync(fd);
  } catch {
    // already closed: nothing else to free
  }
}
