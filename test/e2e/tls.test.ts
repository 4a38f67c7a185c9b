import { createClient } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import { readFileSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EventService } from "../../gen/runnel/v1/event_pb.js";
import type { RunnelServer } from "../../src/server.js";
import { startServer, waitFor } from "../harness/server.js";

const dir = new URL("../tls/", import.meta.url).pathname;
const ca = readFileSync(`${dir}cert.pem`);

describe("TLS with ALPN h2 and http/1.1", () => {
  let server: RunnelServer;
  beforeAll(async () => {
    server = await startServer({ tlsCert: `${dir}cert.pem`, tlsKey: `${dir}key.pem` });
  });
  afterAll(async () => {
    await server.shutdown(1_000);
  });

  const cases = [
    { name: "connect http/1.1", make: (url: string) => createConnectTransport({ baseUrl: url, httpVersion: "1.1", nodeOptions: { ca } }) },
    { name: "grpc h2", make: (url: string) => createGrpcTransport({ baseUrl: url, nodeOptions: { ca } }) },
  ];
  for (const c of cases) {
    it(`publishes and subscribes over ${c.name}`, async () => {
      expect(server.url.startsWith("https://")).toBe(true);
      const client = createClient(EventService, c.make(server.url));
      const topic = `tls.${c.name.replace(/[^a-z0-9]/g, "_")}`;
      await client.publish({ topic, data: new Uint8Array([1, 2, 3]) });
      const abort = new AbortController();
      const seen: number[] = [];
      for await (const m of client.subscribe({ topic, start: { case: "earliest", value: true } }, { signal: abort.signal })) {
        if (m.kind.case === "event") {
          seen.push(...m.kind.value.data);
          abort.abort();
          break;
        }
      }
      expect(seen).toEqual([1, 2, 3]);
      await waitFor(() => server.ledger.size === 0, 5_000, "ledger empty");
    });
  }

  it("serves /healthz over https", async () => {
    const res = await new Promise<number>((resolve, reject) => {
      import("node:https").then(({ get }) => {
        get(`${server.url}/healthz`, { ca }, (r) => {
          r.resume();
          resolve(r.statusCode ?? 0);
        }).on("error", reject);
      }, reject);
    });
    expect(res).toBe(200);
  });
});
