/**
 * The directories a server may tail from, and the one check every request
 * path goes through: nothing that resolves outside them (`..`, absolute
 * paths, symlinks pointing out) and nothing that is not a regular file
 * (directories, devices, FIFOs — opening a FIFO would block — sockets) is
 * ever opened.
 */
import { lstat, readdir, realpath, stat } from "node:fs/promises";
import { realpathSync, statSync, type Stats } from "node:fs";
import path from "node:path";

/** Why a path was refused: "denied" (outside the tail directories) or "invalid" (not a tailable file) or "missing". */
export class TailPathError extends Error {
  override name = "TailPathError";
  constructor(
    message: string,
    readonly kind: "denied" | "invalid" | "missing",
  ) {
    super(message);
  }
}

/** A request path that passed the checks. */
export interface ResolvedTailPath {
  /** As the client named it, normalized (relative to the tail directories). */
  readonly display: string;
  /** Absolute real path to open and watch (inside a tail directory). */
  readonly real: string;
  /** Whether the file exists now. */
  readonly exists: boolean;
}

/** One tailable file, for ListFiles. */
export interface ListedFile {
  readonly path: string;
  readonly size: number;
  readonly modifiedMs: number;
}

const MAX_LISTED = 10_000;
const MAX_DEPTH = 8;

/** What a non-regular file is, for the error message. */
function fileKind(s: Stats): string {
  if (s.isDirectory()) return "a directory";
  if (s.isFIFO()) return "a FIFO";
  if (s.isSocket()) return "a socket";
  if (s.isCharacterDevice() || s.isBlockDevice()) return "a device";
  if (s.isSymbolicLink()) return "a symbolic link";
  return "not a regular file";
}

/** A request path as shown (ListStreams, TailStarted): without empty and "." segments. Checks nothing. */
export function normalizeRequestPath(requested: string): string {
  return requested
    .split("/")
    .filter((p) => p !== "" && p !== ".")
    .join("/");
}

/** Whether `p` is `dir` or inside it (both real, absolute). */
function inside(dir: string, p: string): boolean {
  return p === dir || p.startsWith(dir.endsWith("/") ? dir : `${dir}/`);
}

/** The served tail directories, resolved once. */
export class TailDirs {
  private readonly dirs: readonly { name: string; real: string }[];

  /** Throws (a plain Error with a clear message) when a directory does not exist or two share a name. */
  constructor(dirs: readonly string[]) {
    const resolved: { name: string; real: string }[] = [];
    for (const d of dirs) {
      let real: string;
      try {
        real = realpathSync(d);
      } catch (e) {
        throw new Error(`--tail-dir ${d}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
      }
      if (!statSync(real).isDirectory()) throw new Error(`--tail-dir ${d}: not a directory`);
      const name = path.basename(real);
      if (dirs.length > 1 && resolved.some((r) => r.name === name)) {
        throw new Error(`--tail-dir ${d}: another tail directory is also named "${name}" (with several, paths start with the directory's name)`);
      }
      resolved.push({ name, real });
    }
    this.dirs = resolved;
  }

  get size(): number {
    return this.dirs.length;
  }

  /** Check a request path and resolve it; throws TailPathError. */
  async resolve(requested: string): Promise<ResolvedTailPath> {
    if (this.dirs.length === 0) throw new TailPathError("this server has no tail directories (start it with --tail-dir DIR)", "denied");
    if (requested === "") throw new TailPathError("path is empty", "invalid");
    if (requested.includes("\0")) throw new TailPathError("path contains a NUL byte", "invalid");
    if (requested.length > 4096) throw new TailPathError("path is longer than 4096 characters", "invalid");
    if (path.isAbsolute(requested)) throw new TailPathError(`absolute path "${requested}" refused: paths are relative to the tail directories`, "denied");
    const parts = requested.split("/").filter((p) => p !== "" && p !== ".");
    if (parts.includes("..")) throw new TailPathError(`path "${requested}" refused: ".." is not allowed`, "denied");
    let dir = this.dirs[0]!;
    if (this.dirs.length > 1) {
      const named = this.dirs.find((d) => d.name === parts[0]);
      if (named === undefined) {
        throw new TailPathError(`path "${requested}" must start with a tail directory's name (${this.dirs.map((d) => d.name).join(", ")})`, "missing");
      }
      dir = named;
      parts.shift();
    }
    if (parts.length === 0) throw new TailPathError(`path "${requested}" names a directory, not a file`, "invalid");
    const display = (this.dirs.length > 1 ? [dir.name, ...parts] : parts).join("/");
    const candidate = path.join(dir.real, ...parts);
    let parent: string;
    try {
      parent = await realpath(path.dirname(candidate));
    } catch {
      throw new TailPathError(`directory of "${display}" does not exist`, "missing");
    }
    if (!inside(dir.real, parent)) throw new TailPathError(`path "${display}" resolves outside the tail directories`, "denied");
    const base = path.join(parent, path.basename(candidate));
    let link: Stats;
    try {
      link = await lstat(base);
    } catch {
      return { display, real: base, exists: false }; // tail -F waits for it
    }
    let real = base;
    if (link.isSymbolicLink()) {
      try {
        real = await realpath(base);
      } catch {
        throw new TailPathError(`"${display}" is a symbolic link to nothing`, "missing");
      }
      if (!Array.from(this.dirs).some((d) => inside(d.real, real))) {
        throw new TailPathError(`"${display}" is a symbolic link that points outside the tail directories`, "denied");
      }
    }
    const target = link.isSymbolicLink() ? await stat(real) : link;
    if (!target.isFile()) throw new TailPathError(`"${display}" is ${fileKind(target)}, not a regular file`, "invalid");
    return { display, real, exists: true };
  }

  /** Every regular file under the tail directories (bounded in count and depth). */
  async list(): Promise<ListedFile[]> {
    const out: ListedFile[] = [];
    const walk = async (real: string, shown: string, depth: number): Promise<void> => {
      if (depth > MAX_DEPTH || out.length >= MAX_LISTED) return;
      let entries;
      try {
        entries = await readdir(real, { withFileTypes: true });
      } catch {
        return; // unreadable directory: nothing to list there
      }
      entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
      for (const e of entries) {
        if (out.length >= MAX_LISTED) return;
        const full = path.join(real, e.name);
        const name = shown === "" ? e.name : `${shown}/${e.name}`;
        if (e.isDirectory()) await walk(full, name, depth + 1);
        else if (e.isFile()) {
          try {
            const s = await stat(full);
            out.push({ path: name, size: s.size, modifiedMs: s.mtimeMs });
          } catch {
            // gone between readdir and stat
          }
        }
      }
    };
    for (const d of this.dirs) await walk(d.real, this.dirs.length > 1 ? d.name : "", 0);
    return out;
  }
}
