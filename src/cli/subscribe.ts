/**
 * `runnel subscribe PATTERN [--last N | --from-seq N | --earliest | --after CURSOR] [--json]`:
 * print events as they arrive until Ctrl-C, which cancels the call (the server
 * sees the stream end at once) and exits 130. Built on the resumable client:
 * when the server closes the stream (Closing) or goes away, it resumes after
 * the last cursor by itself and says so on stderr.
 */
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { parseArgs } from "node:util";
import { GapReason, ClosingReason, type SubscribeRequest, type SubscribeResponse } from "../../gen/runnel/v1/event_pb.js";
import { subscribe as resumableSubscribe, type SubscribeInit } from "../client/index.js";
import { CLIENT_OPTIONS, CliError, clientTransport, printStream, reportRetry } from "./common.js";

const decoder = new TextDecoder("utf-8", { fatal: true });

function text(data: Uint8Array): { text: string } | { base64: string } {
  try {
    return { text: decoder.decode(data) };
  } catch {
    return { base64: Buffer.from(data).toString("base64") };
  }
}

const MAX_UINT32 = 2n ** 32n - 1n;
const MAX_UINT64 = 2n ** 64n - 1n;

/** A flag value that must be a whole number within the field's range (a bad value never reaches the wire). */
function whole(flag: string, raw: string, max: bigint): bigint {
  if (!/^\d+$/.test(raw)) throw new CliError(`${flag} must be a whole number, got "${raw}"`);
  const n = BigInt(raw);
  if (n > max) throw new CliError(`${flag} must be at most ${max}, got ${raw}`);
  return n;
}

function startOf(values: { last?: string; "from-seq"?: string; earliest?: boolean; after?: string }): SubscribeRequest["start"] {
  const chosen = [values.last, values["from-seq"], values.earliest, values.after].filter((v) => v !== undefined && v !== false);
  if (chosen.length > 1) throw new CliError("choose one of --last, --from-seq, --earliest, --after");
  if (values.last !== undefined) return { case: "last", value: Number(whole("--last", values.last, MAX_UINT32)) };
  if (values["from-seq"] !== undefined) {
    const seq = whole("--from-seq", values["from-seq"], MAX_UINT64);
    if (seq < 1n) throw new CliError("--from-seq counts from 1");
    return { case: "fromSeq", value: seq };
  }
  if (values.earliest) return { case: "earliest", value: true };
  if (values.after !== undefined) {
    if (values.after === "") throw new CliError("--after needs a cursor");
    return { case: "afterCursor", value: values.after };
  }
  return { case: undefined };
}

/** One line of output for a message, or undefined to print nothing. */
function format(message: SubscribeResponse, json: boolean): string | undefined {
  const k = message.kind;
  switch (k.case) {
    case "event": {
      const e = k.value;
      const time = e.time ? timestampDate(e.time).toISOString() : "";
      const body = text(e.data);
      if (json) {
        return JSON.stringify({ type: "event", topic: e.topic, seq: e.seq.toString(), cursor: e.cursor, time, headers: e.headers, ...("text" in body ? { data: body.text } : { dataBase64: body.base64 }) });
      }
      return `${time} ${e.topic} #${e.seq} ${"text" in body ? body.text : `base64:${body.base64}`}`;
    }
    case "gap": {
      const g = k.value;
      const reason = GapReason[g.reason]?.toLowerCase() ?? String(g.reason);
      if (json) return JSON.stringify({ type: "gap", topic: g.topic, fromSeq: g.fromSeq.toString(), toSeq: g.toSeq.toString(), reason });
      return `-- gap ${g.topic} #${g.fromSeq}..#${g.toSeq} (${reason})`;
    }
    case "subscribed":
      if (json) return JSON.stringify({ type: "subscribed", id: k.value.subscriptionId, heartbeatMs: k.value.heartbeatMs, headCursor: k.value.headCursor });
      return undefined;
    case "closing": {
      const c = k.value;
      const reason = ClosingReason[c.reason]?.toLowerCase() ?? String(c.reason);
      if (json) return JSON.stringify({ type: "closing", reason, resumeCursor: c.resumeCursor, retryAfterMs: c.retryAfterMs, message: c.message });
      return `-- server closing the stream (${reason}: ${c.message}); resuming`;
    }
    default:
      return undefined;
  }
}

/** One line on stderr before each retry: why the stream ended and where it resumes. */
/** Subscribe and print; returns the exit code. */
export async function subscribe(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    options: {
      ...CLIENT_OPTIONS,
      last: { type: "string" },
      "from-seq": { type: "string" },
      earliest: { type: "boolean" },
      after: { type: "string" },
      "heartbeat-ms": { type: "string" },
      "drop-oldest": { type: "boolean" },
    },
    allowPositionals: true,
  });
  if (positionals.length !== 1) throw new CliError("usage: runnel subscribe PATTERN [--last N | --from-seq N | --earliest | --after CURSOR] [--json]");
  const request: SubscribeInit = {
    topic: positionals[0]!,
    start: startOf(values),
    heartbeatMs: values["heartbeat-ms"] === undefined ? 0 : Number(whole("--heartbeat-ms", values["heartbeat-ms"], MAX_UINT32)),
    slowConsumer: values["drop-oldest"] ? 2 : 0,
  };
  const json = values.json ?? false;
  const transport = clientTransport(values.url, values.protocol, values.token);
  return printStream(
    values.url,
    (signal) => resumableSubscribe(transport, request, { signal, onRetry: reportRetry, retryFirstCall: false }),
    (message) => {
      const line = format(message, json);
      if (line !== undefined) console.log(line);
    },
  );
}
