/**
 * The shared file sources of one server, by real path: the first tailer of a
 * path creates its source, the last one leaving closes it (the source removes
 * itself from here). Metrics read the watcher and fd counts from it.
 */
import { FileSource, type SourceListener, type SourceTiming } from "./file-source.js";

/** Sources by real path: one per path however many tailers. */
export class SourceRegistry {
  private readonly sources = new Map<string, FileSource>();

  constructor(private readonly timing: SourceTiming) {}

  /** Attach `listener` to the source of `realPath`, creating it when it is the first. */
  attach(realPath: string, listener: SourceListener): FileSource {
    let source = this.sources.get(realPath);
    if (source === undefined) {
      source = new FileSource(realPath, this.timing, (s) => {
        if (this.sources.get(s.path) === s) this.sources.delete(s.path);
      });
      this.sources.set(realPath, source);
    }
    source.add(listener);
    return source;
  }

  /** Watchers open now (for runnel_tail_watchers_active). */
  watchers(): number {
    let n = 0;
    for (const s of this.sources.values()) if (s.watching) n++;
    return n;
  }

  /** Files open now (for runnel_tail_open_files). */
  openFiles(): number {
    let n = 0;
    for (const s of this.sources.values()) n += s.openFiles;
    return n;
  }
}
