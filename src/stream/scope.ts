/**
 * A stream scope: every resource a stream takes is registered here when it is
 * taken, and released exactly once, whichever way the stream ends. Release is
 * idempotent; a resource registered after the scope closed is released at once.
 * Kept lean (two arrays, no per-resource wrapper): an idle stream holds one.
 */

/** Anything that can be released. */
export interface Releasable {
  close(): void;
}

/** Resources held by every scope of the process, by kind: what tests check is back to zero. */
const heldInProcess = new Map<string, number>();

function count(kind: string, delta: number): void {
  const n = (heldInProcess.get(kind) ?? 0) + delta;
  if (n === 0) heldInProcess.delete(kind);
  else heldInProcess.set(kind, n);
}

/** Resources held right now by all scopes in this process, by kind (a copy). */
export function heldResources(): Map<string, number> {
  return new Map(heldInProcess);
}

function safeClose(resource: Releasable): void {
  try {
    resource.close();
  } catch {
    // A failing release must not keep the others held; nothing useful to report to the peer.
  }
}

/** Owns the resources of one stream. */
export class Scope {
  // Alternating kind, resource, in an array of exactly that length (an idle stream keeps it).
  private held: readonly (string | Releasable)[] = [];
  private closed = false;

  /** True after `releaseAll()`. */
  get isClosed(): boolean {
    return this.closed;
  }

  /** Resources held right now, by kind. */
  resources(): Map<string, number> {
    const counts = new Map<string, number>();
    for (let i = 0; i < this.held.length; i += 2) {
      const kind = this.held[i] as string;
      counts.set(kind, (counts.get(kind) ?? 0) + 1);
    }
    return counts;
  }

  /** Register a resource of `kind`; its `close()` runs once, when the scope is released. */
  own(kind: string, resource: Releasable): void {
    if (this.closed) {
      safeClose(resource);
      return;
    }
    this.held = [...this.held, kind, resource];
    count(kind, 1);
  }

  /** Register a timer so it is cleared with the stream. */
  ownTimer(timer: NodeJS.Timeout): void {
    this.own("timer", { close: () => clearTimeout(timer) });
  }

  /** Release every resource now, newest first; errors in one release never skip the others. Idempotent. */
  releaseAll(): void {
    this.closed = true;
    const held = this.held;
    if (held.length === 0) return;
    this.held = [];
    for (let i = held.length - 1; i > 0; i -= 2) {
      count(held[i - 1] as string, -1);
      safeClose(held[i] as Releasable);
    }
  }
}
