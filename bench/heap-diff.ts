/**
 * Compare two V8 heap snapshots (from `npm run bench -- --only heap
 * --heap-snapshot DIR`) by constructor: what the N streams opened between
 * them cost, per stream.
 *
 *   node dist/bench/heap-diff.js BEFORE.heapsnapshot AFTER.heapsnapshot N [TOP]
 */
import { readFileSync } from "node:fs";

interface Snapshot {
  snapshot: { meta: { node_fields: string[]; node_types: [string[], ...unknown[]] } };
  nodes: number[];
  strings: string[];
}

/** Self size and count per "type:name" (constructor for objects, type for the rest). */
function byConstructor(path: string): Map<string, { size: number; count: number }> {
  const snap = JSON.parse(readFileSync(path, "utf8")) as Snapshot;
  const fields = snap.snapshot.meta.node_fields;
  const types = snap.snapshot.meta.node_types[0];
  const width = fields.length;
  const iType = fields.indexOf("type");
  const iName = fields.indexOf("name");
  const iSize = fields.indexOf("self_size");
  const out = new Map<string, { size: number; count: number }>();
  for (let i = 0; i < snap.nodes.length; i += width) {
    const type = types[snap.nodes[i + iType]!]!;
    const name = type === "object" || type === "closure" || type === "native" ? snap.strings[snap.nodes[i + iName]!]! : "";
    const key = `${type}${name === "" ? "" : `:${name.slice(0, 60)}`}`;
    const e = out.get(key) ?? { size: 0, count: 0 };
    e.size += snap.nodes[i + iSize]!;
    e.count++;
    out.set(key, e);
  }
  return out;
}

const [beforePath, afterPath, nRaw, topRaw] = process.argv.slice(2);
if (beforePath === undefined || afterPath === undefined || nRaw === undefined) {
  console.error("usage: node dist/bench/heap-diff.js BEFORE.heapsnapshot AFTER.heapsnapshot N [TOP]");
  process.exit(2);
}
const n = Number(nRaw);
const before = byConstructor(beforePath);
const after = byConstructor(afterPath);
const rows: { key: string; bytes: number; count: number }[] = [];
let total = 0;
for (const [key, a] of after) {
  const b = before.get(key) ?? { size: 0, count: 0 };
  rows.push({ key, bytes: (a.size - b.size) / n, count: (a.count - b.count) / n });
  total += a.size - b.size;
}
rows.sort((x, y) => y.bytes - x.bytes);
console.log(`${(total / n / 1024).toFixed(2)} KB self size per stream in all`);
for (const r of rows.slice(0, Number(topRaw ?? 30))) {
  console.log(`${r.bytes.toFixed(0).padStart(7)} B  ${r.count.toFixed(2).padStart(6)} objects  ${r.key}`);
}
