// Bundle the live page (page/) into dist/page/ with esbuild: one JS file with connect-web and the
// generated code, one CSS file, and index.html. runnel serves these itself at GET / (no CDN).
import { build } from "esbuild";
import { copyFileSync, mkdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const out = join(root, "dist", "page");
mkdirSync(out, { recursive: true });
await build({
  absWorkingDir: root,
  entryPoints: { app: "page/app.ts" },
  bundle: true,
  minify: true,
  format: "esm",
  target: ["chrome111", "firefox111", "safari16.4"],
  outdir: out,
  logLevel: "warning",
});
await build({ absWorkingDir: root, entryPoints: { app: "page/app.css" }, bundle: true, minify: true, outdir: out, logLevel: "warning" });
copyFileSync(join(root, "page", "index.html"), join(out, "index.html"));
