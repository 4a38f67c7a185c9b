/**
 * `runnel subscribe PATTERN [--last N | --from-seq N | --earliest | --after CURSOR] [--json]`:
 * print events as they arrive until Ctrl-C, which cancels the call (the server
 * sees the stream end at once) and exits 130.
 */
import { createClient } from "@connectrpc/connect";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { parseArgs } from "node:util";
import { EventService, GapReason, ClosingReason, type SubscribeRequest, type SubscribeResponse } from "../../gen/runnel/v1/event_pb.js";
import type { MessageInitShape } from "@bufbuild/protobuf";
import type { SubscribeRequestSchema } from "../../gen/runnel/v1/event_pb.js";
import { CLIENT_OPTIONS, CliError, EXIT_INTERRUPTED, clientTransport, describeCallError, interruptSignal } from "./common.js";

const decoder = new TextDecoder("utf-8", { fatal: true });

function text(data: Uint8Array): { text: string } | { base64: string } {
  try {
    return { text: decoder.decode(data) };
  } catch {
    return { base64: Buffer.from(data).toString("base64") };
  }
}

function startOf(values: { last?: string; "from-seq"?: string; earliest?: boolean; after?: string }): SubscribeRequest["start"] {
  const chosen = [values.last, values["from-seq"], values.earliest, values.after].filter((v) => v !== undefined && v !== false);
  if (chosen.length > 1) throw new CliError("choose one of --last, --from-seq, --earliest, --after");
  const whole = (flag: string, raw: string): bigint => {
    if (!/^\d+$/.test(raw)) throw new CliError(`${flag} must be a whole number, got "${raw}"`);
    return BigInt(raw);
  };
  if (values.last !== undefined) return { case: "last", value: Number(whole("--last", values.last)) };
  if (values["from-seq"] !== undefined) return { case: "fromSeq", value: whole("--from-seq", values["from-seq"]) };
  if (values.earliest) return { case: "earliest", value: true };
  if (values.after !== undefined) return { case: "afterCursor", value: values.after };
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
      return `-- server closing the stream (${reason}: ${c.message}); resume with --after ${c.resumeCursor}`;
    }
    default:
      return undefined;
  }
}

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
  const request: MessageInitShape<typeof SubscribeRequestSchema> = {
    topic: positionals[0]!,
    start: startOf(values),
    heartbeatMs: values["heartbeat-ms"] === undefined ? 0 : Number(values["heartbeat-ms"]),
    slowConsumer: values["drop-oldest"] ? 2 : 0,
  };
  const json = values.json ?? false;
  const client = createClient(EventService, clientTransport(values.url, values.protocol));
  const interrupt = interruptSignal();
  try {
    for await (const message of client.subscribe(request, { signal: interrupt.signal })) {
      const line = format(message, json);
      if (line !== undefined) console.log(line);
    }
    return 0;
  } catch (e) {
    if (interrupt.interrupted()) return EXIT_INTERRUPTED;
    throw describeCallError(e, values.url);
  } finally {
    interrupt.dispose();
  }
}
