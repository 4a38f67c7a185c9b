/** `runnel publish TOPIC [DATA | -]`: publish one event and print where it went. */
import { createClient } from "@connectrpc/connect";
import { parseArgs } from "node:util";
import { EventService } from "../../gen/runnel/v1/event_pb.js";
import { CLIENT_OPTIONS, CliError, clientTransport, describeCallError } from "./common.js";

async function readStdin(): Promise<Uint8Array> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

/** Publish; returns the exit code. */
export async function publish(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    options: { ...CLIENT_OPTIONS, header: { type: "string", multiple: true, short: "H" } },
    allowPositionals: true,
  });
  const [topic, dataArg, ...extra] = positionals;
  if (topic === undefined || extra.length > 0) throw new CliError("usage: runnel publish TOPIC [DATA | -] [-H key=value]...");
  const headers: Record<string, string> = {};
  for (const h of values.header ?? []) {
    const eq = h.indexOf("=");
    if (eq <= 0) throw new CliError(`--header must look like key=value, got "${h}"`);
    headers[h.slice(0, eq)] = h.slice(eq + 1);
  }
  const data = dataArg === "-" ? await readStdin() : new TextEncoder().encode(dataArg ?? "");
  const client = createClient(EventService, clientTransport(values.url, values.protocol, values.token));
  try {
    const res = await client.publish({ topic, data, headers }, { timeoutMs: 30_000 });
    if (values.json) console.log(JSON.stringify({ topic, seq: res.seq.toString(), cursor: res.cursor }));
    else console.log(`published ${topic} #${res.seq} cursor=${res.cursor}`);
    return 0;
  } catch (e) {
    throw describeCallError(e, values.url);
  }
}
