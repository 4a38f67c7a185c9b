/**
 * Tail cursors: which file generation (device + inode + birth time, so a
 * reused inode number is not mistaken for the old file) and the byte offset
 * right after a line. Opaque to clients; decoded only here.
 */

/** A file generation: what `tail -F` calls "the same file". */
export interface FileIdentity {
  readonly dev: bigint;
  readonly ino: bigint;
  /** Birth time in ns where the filesystem reports one (statx), else 0. */
  readonly birthNs: bigint;
}

/** A position in one file generation. */
export interface TailPosition {
  readonly file: FileIdentity;
  readonly offset: number;
}

const PREFIX = "t1.";

/** Whether two identities name the same generation. */
export function sameFile(a: FileIdentity, b: FileIdentity): boolean {
  return a.dev === b.dev && a.ino === b.ino && a.birthNs === b.birthNs;
}

/** Encode a position as an opaque cursor string. */
export function encodeTailCursor(p: TailPosition): string {
  const raw = `${p.file.dev.toString(36)}.${p.file.ino.toString(36)}.${p.file.birthNs.toString(36)}.${p.offset.toString(36)}`;
  return PREFIX + Buffer.from(raw, "latin1").toString("base64url");
}

/** Decode a cursor; undefined when it is not a tail cursor runnel issued. */
export function decodeTailCursor(cursor: string): TailPosition | undefined {
  if (!cursor.startsWith(PREFIX) || cursor.length > 200) return undefined;
  const raw = Buffer.from(cursor.slice(PREFIX.length), "base64url").toString("latin1");
  const parts = raw.split(".");
  if (parts.length !== 4 || !parts.every((p) => /^[0-9a-z]{1,20}$/.test(p))) return undefined;
  const [dev, ino, birth, offset] = parts.map(parseBase36) as [bigint, bigint, bigint, bigint];
  if (offset > BigInt(Number.MAX_SAFE_INTEGER)) return undefined;
  return { file: { dev, ino, birthNs: birth }, offset: Number(offset) };
}

function parseBase36(s: string): bigint {
  let n = 0n;
  for (const ch of s) n = n * 36n + BigInt(parseInt(ch, 36));
  return n;
}
