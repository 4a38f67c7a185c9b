/**
 * A stream scope: every resource a stream takes is registered here when it is
 * taken, and released exactly once, whichever way the stream ends. Release is
 * idempotent; a resource registered after the scope closed is released at once.
 */

/** Anything that can be released. */
export interface Releasable {
  close(): void;
}

/** A registered resource; `release()` frees it early (and only once). */
export interface Held {
  release(): void;
}

/** Owns the resources of one stream. */
export class Scope {
  private readonly held = new Set<HeldResource>();
  private closed = false;
  private readonly counts = new Map<string, number>();

  /** True after `releaseAll()`. */
  get isClosed(): boolean {
    return this.closed;
  }

  /** Resources held right now, by kind (a live Map; read it, do not keep it). */
  resources(): ReadonlyMap<string, number> {
    return this.counts;
  }

  /** Register a resource of `kind`; its `close()` runs once, when released. */
  own(kind: string, resource: Releasable): Held {
    const entry = new HeldResource(kind, resource, this);
    if (this.closed) {
      entry.release();
      return entry;
    }
    this.held.add(entry);
    this.counts.set(kind, (this.counts.get(kind) ?? 0) + 1);
    return entry;
  }

  /** Register a timer so it is cleared with the stream. */
  ownTimer(timer: NodeJS.Timeout): Held {
    return this.own("timer", { close: () => clearTimeout(timer) });
  }

  /** Release every resource now; errors in one release never skip the others. Idempotent. */
  releaseAll(): void {
    this.closed = true;
    for (const entry of [...this.held]) entry.release();
  }

  /** @internal called by a resource when it is released. */
  forget(entry: HeldResource): void {
    if (!this.held.delete(entry)) return;
    const n = (this.counts.get(entry.kind) ?? 1) - 1;
    if (n === 0) this.counts.delete(entry.kind);
    else this.counts.set(entry.kind, n);
  }
}

class HeldResource implements Held {
  private released = false;

  constructor(
    readonly kind: string,
    private readonly resource: Releasable,
    private readonly scope: Scope,
  ) {}

  release(): void {
    if (this.released) return;
    this.released = true;
    this.scope.forget(this);
    try {
      this.resource.close();
    } catch {
      // A failing release must not keep the others held; nothing useful to report to the peer.
    }
  }
}
