import { createClient } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EventService } from "../../gen/runnel/v1/event_pb.js";
import type { RunnelServer } from "../../src/server.js";
import { expectNoStreams, startServer } from "../harness/server.js";
import { TRANSPORTS } from "../harness/transports.js";

describe("publish and subscribe over every transport", () => {
  let server: RunnelServer;
  beforeAll(async () => {
    server = await startServer();
  });
  afterAll(async () => {
    await server.shutdown(1_000);
  });

  for (const t of TRANSPORTS) {
    it(t.name, async () => {
      const client = createClient(EventService, t.create(server.url));
      const topic = `smoke.${t.name.replace(/[^a-z0-9]/g, "_")}`;
      const abort = new AbortController();
      const received: string[] = [];
      const stream = client.subscribe({ topic }, { signal: abort.signal });
      const it = stream[Symbol.asyncIterator]();
      const first = await it.next();
      expect(first.value?.kind.case).toBe("subscribed");
      for (let i = 1; i <= 3; i++) await client.publish({ topic, data: new TextEncoder().encode(`m${i}`) });
      while (received.length < 3) {
        const r = await it.next();
        if (r.value?.kind.case === "event") received.push(new TextDecoder().decode(r.value.kind.value.data));
      }
      expect(received).toEqual(["m1", "m2", "m3"]);
      abort.abort();
      await expect(it.next()).rejects.toThrow();
      await expectNoStreams(server);
    });
  }
});
