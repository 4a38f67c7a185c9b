/**
 * Tests that run the built package (the CLI in child processes, the page
 * bundle in a browser) need dist/ to be current: `npm test` builds first,
 * and this covers running one test file alone.
 */
import { spawnSync } from "node:child_process";
import { existsSync, readdirSync, statSync } from "node:fs";
import { join } from "node:path";

/** The repository root. */
export const ROOT = join(import.meta.dirname, "..", "..");

/** The built CLI. */
export const CLI = join(ROOT, "dist", "src", "cli.js");

/** Newest mtime of the TypeScript sources under `dir`. */
function newestSource(dir: string): number {
  let newest = 0;
  if (!existsSync(dir)) return newest;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) newest = Math.max(newest, newestSource(path));
    else if (/\.(ts|html|css)$/.test(entry.name)) newest = Math.max(newest, statSync(path).mtimeMs);
  }
  return newest;
}

/** Build dist/ (with `npm run build`'s steps) when it is missing or older than src/, gen/ or page/. */
export function ensureBuilt(): void {
  const marker = join(ROOT, "dist", "page", "app.js");
  const built = existsSync(CLI) && existsSync(marker) ? Math.min(statSync(CLI).mtimeMs, statSync(marker).mtimeMs) : 0;
  const sources = Math.max(newestSource(join(ROOT, "src")), newestSource(join(ROOT, "gen")), newestSource(join(ROOT, "page")));
  if (built >= sources) return;
  // Emit even when an unrelated file (bench/, in progress) has type errors: the CLI's own files must compile.
  spawnSync(process.execPath, [join(ROOT, "node_modules", "typescript", "bin", "tsc"), "-p", join(ROOT, "tsconfig.json")], { stdio: "ignore" });
  spawnSync(process.execPath, [join(ROOT, "scripts", "build-page.mjs")], { stdio: "ignore" });
  if (!existsSync(CLI)) throw new Error("build failed: dist/src/cli.js is missing");
}
