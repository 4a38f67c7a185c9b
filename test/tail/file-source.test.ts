/**
 * The shared file source on its own, against real files: what it tells its
 * listeners with fs.watch and with the stat poll alone (the fallback when
 * inotify is exhausted), and that the last listener leaving closes the
 * watcher and the fd synchronously.
 */
import { appendFileSync, renameSync, truncateSync, unlinkSync, writeFileSync } from "node:fs";
import { afterAll, describe, expect, it } from "vitest";
import type { GenerationChange, SourceListener } from "../../src/tail/file-source.js";
import { tailHeld } from "../../src/tail/open-file.js";
import { SourceRegistry } from "../../src/tail/source-registry.js";
import { waitFor } from "../harness/server.js";
import { fdsUnder, tempTailDir } from "../harness/tailer.js";

const tmp = tempTailDir();
afterAll(() => tmp.remove());

/** A listener that records what it was told. */
class Recorder implements SourceListener {
  readonly events: (GenerationChange | "changed" | "ending")[] = [];
  changed(): void {
    if (this.events.at(-1) !== "changed") this.events.push("changed");
  }
  ending(): void {
    this.events.push("ending");
  }
  generation(change: GenerationChange): void {
    this.events.push(change);
  }
}

for (const watch of [true, false]) {
  describe(watch ? "with fs.watch" : "with the stat poll alone", () => {
    it("reports growth, truncation, rotation, deletion and creation; closes everything at once", async () => {
      const path = tmp.file(`source-${watch}.log`);
      writeFileSync(path, "a\n");
      const registry = new SourceRegistry({ pollMs: 50, settleMs: 100, watch });
      const r = new Recorder();
      const other = new Recorder();
      const source = registry.attach(path, r);
      expect(registry.attach(path, other)).toBe(source); // shared
      expect(tailHeld()).toEqual({ watchers: watch ? 1 : 0, openFiles: 1 });

      appendFileSync(path, "b\n");
      await waitFor(() => r.events.includes("changed"), 5_000, "changed");
      truncateSync(path, 0);
      appendFileSync(path, "longer than before\n");
      await waitFor(() => r.events.includes("truncated"), 5_000, "truncated");
      renameSync(path, `${path}.1`);
      writeFileSync(path, "new\n");
      await waitFor(() => r.events.includes("rotated"), 5_000, "rotated");
      unlinkSync(path);
      await waitFor(() => r.events.includes("deleted"), 5_000, "deleted");
      expect(source.exists).toBe(false);
      writeFileSync(path, "again\n");
      await waitFor(() => r.events.includes("created"), 5_000, "created");
      expect(r.events.filter((e) => e !== "changed")).toEqual(["truncated", "ending", "rotated", "ending", "deleted", "created"]);

      // Two listeners: the first leaving keeps the source; the last closes it, synchronously.
      source.remove(r);
      expect(tailHeld().openFiles).toBe(1);
      source.remove(other);
      expect(tailHeld()).toEqual({ watchers: 0, openFiles: 0 });
      expect(fdsUnder(tmp.dir)).toEqual([]);
      expect(registry.watchers() + registry.openFiles()).toBe(0);
    });
  });
}
