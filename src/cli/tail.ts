/**
 * `runnel tail PATH [-n N] [--no-follow] [--grep RE] [--after CURSOR] [--json]`:
 * print a file's last lines, then follow it like `tail -F` until Ctrl-C,
 * which cancels the call (the server sees the stream end at once) and exits
 * 130. `runnel tail --list` lists the files that can be tailed.
 */
import { createClient } from "@connectrpc/connect";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { parseArgs } from "node:util";
import { ClosingReason } from "../../gen/runnel/v1/event_pb.js";
import { FileEventKind, TailService, type TailResponse } from "../../gen/runnel/v1/tail_pb.js";
import { CLIENT_OPTIONS, CliError, clientTransport, describeCallError, printStream, reportRetry } from "./common.js";
import { tail as resumableTail, type TailInit } from "../client/index.js";

const USAGE = "usage: runnel tail PATH [-n N] [--no-follow] [--grep RE] [--after CURSOR] [--json] | runnel tail --list";
const MAX_UINT32 = 2 ** 32 - 1;

function count(flag: string, raw: string): number {
  const n = Number(raw);
  if (!/^\d+$/.test(raw) || n > MAX_UINT32) throw new CliError(`${flag} must be a whole number up to ${MAX_UINT32}, got "${raw}"`);
  return n;
}

const lower = (name: string | undefined, fallback: number): string => name?.toLowerCase() ?? String(fallback);

/** What to print for a message: a line for stdout, a note for stderr, or nothing. */
function format(message: TailResponse, json: boolean): { out?: string; err?: string } {
  const k = message.kind;
  if (json) {
    switch (k.case) {
      case "started":
        return { out: JSON.stringify({ type: "started", id: k.value.streamId, path: k.value.path, exists: k.value.exists, headCursor: k.value.headCursor }) };
      case "line": {
        const l = k.value;
        const flags = { ...(l.truncated ? { truncated: true } : {}), ...(l.partial ? { partial: true } : {}), ...(l.replaced ? { replaced: true } : {}) };
        return { out: JSON.stringify({ type: "line", text: l.text, offset: l.offset.toString(), cursor: l.cursor, time: l.time ? timestampDate(l.time).toISOString() : "", ...flags }) };
      }
      case "fileEvent":
        return { out: JSON.stringify({ type: "file_event", kind: lower(FileEventKind[k.value.kind], k.value.kind), message: k.value.message, cursor: k.value.cursor, lostBytes: k.value.lostBytes.toString() }) };
      case "closing":
        return { out: JSON.stringify({ type: "closing", reason: lower(ClosingReason[k.value.reason], k.value.reason), resumeCursor: k.value.resumeCursor, message: k.value.message }) };
      default:
        return {};
    }
  }
  switch (k.case) {
    case "line":
      return { out: k.value.text };
    case "started":
      return k.value.exists ? {} : { err: `runnel tail: ${k.value.path} does not exist yet; waiting for it` };
    case "fileEvent":
      return { err: `runnel tail: ${k.value.message}` };
    case "closing": {
      const c = k.value;
      return { err: `runnel tail: server closing the stream (${lower(ClosingReason[c.reason], c.reason)}: ${c.message}); resuming` };
    }
    default:
      return {};
  }
}

/** Tail and print; returns the exit code. */
export async function tail(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    options: {
      ...CLIENT_OPTIONS,
      lines: { type: "string", short: "n" },
      "no-follow": { type: "boolean" },
      grep: { type: "string" },
      after: { type: "string" },
      "heartbeat-ms": { type: "string" },
      list: { type: "boolean" },
    },
    allowPositionals: true,
  });
  const transport = clientTransport(values.url, values.protocol, values.token);
  const client = createClient(TailService, transport);
  if (values.list) {
    if (positionals.length !== 0) throw new CliError(USAGE);
    try {
      const { files } = await client.listFiles({});
      for (const f of files) {
        const modified = f.modified ? timestampDate(f.modified).toISOString() : "";
        console.log(values.json ? JSON.stringify({ path: f.path, size: f.size.toString(), modified }) : `${f.path}\t${f.size}\t${modified}`);
      }
      return 0;
    } catch (e) {
      throw describeCallError(e, values.url);
    }
  }
  if (positionals.length !== 1) throw new CliError(USAGE);
  if (values.after === "") throw new CliError("--after needs a cursor");
  const request: TailInit = {
    path: positionals[0]!,
    grep: values.grep ?? "",
    afterCursor: values.after ?? "",
    heartbeatMs: values["heartbeat-ms"] === undefined ? 0 : count("--heartbeat-ms", values["heartbeat-ms"]),
    ...(values.lines !== undefined ? { lines: count("-n", values.lines) } : {}),
    ...(values["no-follow"] ? { follow: false } : {}),
  };
  const json = values.json ?? false;
  return printStream(
    values.url,
    (signal) => resumableTail(transport, request, { signal, onRetry: reportRetry, retryFirstCall: false }),
    (message) => {
      const { out, err } = format(message, json);
      if (out !== undefined) console.log(out);
      if (err !== undefined) console.error(err);
    },
  );
}
