/** `runnel streams`: list the live streams of a server (AdminService.ListStreams). */
import { createClient } from "@connectrpc/connect";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { parseArgs } from "node:util";
import { AdminService } from "../../gen/runnel/v1/admin_pb.js";
import { CLIENT_OPTIONS, clientTransport, describeCallError } from "./common.js";

/** Print the table (or JSON lines); returns the exit code. */
export async function streams(argv: string[]): Promise<number> {
  const { values } = parseArgs({ args: argv, options: { ...CLIENT_OPTIONS, close: { type: "string" } } });
  const client = createClient(AdminService, clientTransport(values.url, values.protocol, values.token));
  try {
    if (values.close !== undefined) {
      await client.closeStream({ id: values.close }, { timeoutMs: 10_000 });
      console.log(`closed ${values.close}`);
      return 0;
    }
    const res = await client.listStreams({}, { timeoutMs: 10_000 });
    const rows = res.streams.map((s) => ({
      id: s.id,
      rpc: s.rpc.split("/").pop() ?? s.rpc,
      protocol: s.protocol,
      peer: s.peer,
      target: s.topic || s.path,
      started: s.started ? timestampDate(s.started).toISOString() : "",
      sent: s.eventsSent.toString(),
      queued: String(s.queued),
      lastWrite: s.lastWrite ? timestampDate(s.lastWrite).toISOString() : "-",
    }));
    if (values.json) {
      for (const r of rows) console.log(JSON.stringify(r));
      return 0;
    }
    const header = { id: "ID", rpc: "RPC", protocol: "PROTOCOL", peer: "PEER", target: "TOPIC/PATH", started: "STARTED", sent: "SENT", queued: "QUEUED", lastWrite: "LAST WRITE" };
    const keys = Object.keys(header) as (keyof typeof header)[];
    const all = [header, ...rows];
    const width = (k: keyof typeof header): number => Math.max(...all.map((r) => r[k].length));
    for (const r of all) console.log(keys.map((k) => r[k].padEnd(width(k))).join("  ").trimEnd());
    if (rows.length === 0) console.log("(no live streams)");
    return 0;
  } catch (e) {
    throw describeCallError(e, values.url);
  }
}
