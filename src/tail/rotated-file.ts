/**
 * A tailer resuming with a cursor of a generation that was rotated away
 * (app.log renamed to app.log.1) finds it under its new name in the same
 * directory — inside the tail directories by construction — and reads the
 * rest of it from there before moving on.
 */
import { readdirSync } from "node:fs";
import path from "node:path";
import type { FileIdentity } from "./cursor.js";
import { closeFile, openRegularFile, sameIdentity, statPath } from "./open-file.js";

/** A file generation that is no longer at the followed path but still exists. */
export interface RotatedFile {
  readonly fd: number;
  readonly identity: FileIdentity;
  readonly size: number;
}

/** Find and open the generation `identity` in the directory of `followed`; counted as open until `closeRotated`. */
export function openRotated(followed: string, identity: FileIdentity): RotatedFile | undefined {
  const dir = path.dirname(followed);
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return undefined;
  }
  for (const name of names.slice(0, 10_000)) {
    const s = statPath(path.join(dir, name));
    if (s === undefined || !s.isFile() || !sameIdentity(s, identity)) continue;
    const opened = openRegularFile(path.join(dir, name));
    if (opened === undefined) return undefined;
    if (!sameIdentity(opened.stats, identity)) {
      closeFile(opened.fd);
      return undefined;
    }
    return { fd: opened.fd, identity, size: Number(opened.stats.size) };
  }
  return undefined;
}

/** Close a file opened by `openRotated`. */
export function closeRotated(file: RotatedFile): void {
  closeFile(file.fd);
}
