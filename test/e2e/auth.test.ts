/**
 * Auth over real transports: bearer tokens from an --auth file and JWTs
 * (RS256, ES256, HS256) verified against its JWKS. No token is
 * Unauthenticated; anything outside the rights is PermissionDenied,
 * including every pattern escalation; AdminService and /metrics need admin;
 * refused streams leave nothing in the ledger.
 */
import { Code, ConnectError, createClient, type Client } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AdminService } from "../../gen/runnel/v1/admin_pb.js";
import { EventService } from "../../gen/runnel/v1/event_pb.js";
import type { MessageInitShape } from "@bufbuild/protobuf";
import type { SubscribeRequestSchema } from "../../gen/runnel/v1/event_pb.js";
import type { RunnelServer } from "../../src/server.js";
import { TOKENS, writeAuthFixture, type AuthFixture } from "../harness/auth-fixture.js";
import { parseProm, promValue } from "../harness/prom.js";
import { expectNoStreams, startServer } from "../harness/server.js";
import { TRANSPORTS } from "../harness/transports.js";

const enc = (s: string): Uint8Array => new TextEncoder().encode(s);
const bearer = (token: string | undefined): Record<string, string> => (token === undefined ? {} : { authorization: `Bearer ${token}` });

/** "ok" or the code of a failed call. */
async function outcome(call: () => Promise<unknown>): Promise<"ok" | Code> {
  try {
    await call();
    return "ok";
  } catch (e) {
    return ConnectError.from(e).code;
  }
}

/** Open a Subscribe; "subscribed" once the first message (Subscribed) arrives, else the code it failed with. The call is aborted after. */
async function subscribeOutcome(
  client: Client<typeof EventService>,
  req: MessageInitShape<typeof SubscribeRequestSchema>,
  token: string | undefined,
): Promise<"subscribed" | Code> {
  const abort = new AbortController();
  try {
    for await (const m of client.subscribe(req, { signal: abort.signal, headers: bearer(token), timeoutMs: 10_000 })) {
      return m.kind.case === "subscribed" ? "subscribed" : Code.Internal;
    }
    return Code.Internal;
  } catch (e) {
    return ConnectError.from(e).code;
  } finally {
    abort.abort();
  }
}

describe("auth", () => {
  let server: RunnelServer;
  let fixture: AuthFixture;

  beforeAll(async () => {
    fixture = await writeAuthFixture();
    server = await startServer({ auth: fixture.path });
  });
  afterAll(async () => {
    await server.shutdown(1_000);
  });

  for (const t of TRANSPORTS) {
    describe(t.name, () => {
      let events: Client<typeof EventService>;
      let admin: Client<typeof AdminService>;
      beforeAll(() => {
        const transport = t.create(server.url);
        events = createClient(EventService, transport);
        admin = createClient(AdminService, transport);
      });

      it("no token, a malformed header or an unknown token: Unauthenticated, for every rpc", async () => {
        for (const headers of [{}, { authorization: "Basic dXNlcjpwYXNz" }, { authorization: "Bearer nope" }, { authorization: "Bearer " + "x".repeat(10_000) }]) {
          expect(await outcome(() => events.publish({ topic: "orders.eu.created", data: enc("x") }, { headers }))).toBe(Code.Unauthenticated);
          expect(await outcome(() => admin.listStreams({}, { headers }))).toBe(Code.Unauthenticated);
        }
        expect(await subscribeOutcome(events, { topic: "orders.eu.created" }, undefined)).toBe(Code.Unauthenticated);
        expect(await subscribeOutcome(events, { topic: "orders.eu.created" }, "nope")).toBe(Code.Unauthenticated);
        await expectNoStreams(server);
      });

      it("publish: inside the rights is accepted, outside is PermissionDenied and nothing is stored", async () => {
        const ok = await events.publish({ topic: "orders.eu.created", data: enc("x") }, { headers: bearer(TOKENS.writer) });
        expect(ok.seq).toBeGreaterThan(0n);
        const topicsBefore = server.bus.stats().topics;
        expect(await outcome(() => events.publish({ topic: "billing.eu.created", data: enc("x") }, { headers: bearer(TOKENS.writer) }))).toBe(Code.PermissionDenied);
        expect(await outcome(() => events.publish({ topic: "orders", data: enc("x") }, { headers: bearer(TOKENS.writer) }))).toBe(Code.PermissionDenied);
        expect(await outcome(() => events.publish({ topic: "orders.eu.created", data: enc("x") }, { headers: bearer(TOKENS.euReader) }))).toBe(Code.PermissionDenied);
        expect(server.bus.stats().topics).toBe(topicsBefore);
      });

      it("subscribe: a right orders.eu.* admits orders.eu.created and itself, and no escalation", async () => {
        for (const topic of ["orders.eu.created", "orders.eu.*"]) {
          expect(await subscribeOutcome(events, { topic }, TOKENS.euReader), topic).toBe("subscribed");
        }
        for (const topic of ["orders.>", "orders.*.created", "orders.eu.>", "orders.*.*", ">", "*.eu.created", "orders.eu", "orders.eu.created.x", "orders.us.created"]) {
          expect(await subscribeOutcome(events, { topic }, TOKENS.euReader), topic).toBe(Code.PermissionDenied);
        }
        // A publisher has no subscribe right at all.
        expect(await subscribeOutcome(events, { topic: "orders.eu.created" }, TOKENS.writer)).toBe(Code.PermissionDenied);
        await expectNoStreams(server);
      });

      it("AdminService needs the admin right", async () => {
        expect(await outcome(() => admin.listStreams({}, { headers: bearer(TOKENS.euReader) }))).toBe(Code.PermissionDenied);
        expect(await outcome(() => admin.closeStream({ id: "x" }, { headers: bearer(TOKENS.writer) }))).toBe(Code.PermissionDenied);
        expect(await outcome(() => admin.listStreams({}, { headers: bearer(TOKENS.admin) }))).toBe("ok");
      });
    });
  }

  describe("JWT", () => {
    let events: Client<typeof EventService>;
    beforeAll(() => {
      events = createClient(EventService, TRANSPORTS[2]!.create(server.url));
    });

    for (const alg of ["RS256", "ES256", "HS256"] as const) {
      it(`${alg}: claims carry the rights`, async () => {
        const jwt = await fixture.jwt(alg, { sub: `svc-${alg}`, runnel_publish: ["jwt.>"], runnel_subscribe: ["jwt.eu.*"] });
        const r = await events.publish({ topic: "jwt.eu.created", data: enc("x") }, { headers: bearer(jwt) });
        expect(r.seq).toBeGreaterThan(0n);
        expect(await outcome(() => events.publish({ topic: "orders.eu.created", data: enc("x") }, { headers: bearer(jwt) }))).toBe(Code.PermissionDenied);
        expect(await subscribeOutcome(events, { topic: "jwt.eu.*" }, jwt)).toBe("subscribed");
        expect(await subscribeOutcome(events, { topic: "jwt.>" }, jwt)).toBe(Code.PermissionDenied);
      });

      it(`${alg}: expired, wrongly signed, wrong audience or bad claims: Unauthenticated`, async () => {
        const claims = { sub: "svc", runnel_publish: [">"] };
        const bad = [
          await fixture.jwt(alg, claims, { expiresIn: "-1m" }),
          await fixture.jwt(alg, claims, { foreign: true }),
          await fixture.jwt(alg, claims, { audience: "someone-else" }),
          await fixture.jwt(alg, { runnel_publish: [">"] }), // no sub
          await fixture.jwt(alg, { sub: "svc", runnel_publish: "orders.>" }), // not an array
          await fixture.jwt(alg, { sub: "svc", runnel_publish: ["orders.>.x"] }), // not a valid pattern
        ];
        for (const jwt of bad) {
          expect(await outcome(() => events.publish({ topic: "a.b", data: enc("x") }, { headers: bearer(jwt) }))).toBe(Code.Unauthenticated);
        }
      });
    }

    it("alg none and a tampered payload are refused", async () => {
      const good = await fixture.jwt("ES256", { sub: "svc", runnel_publish: ["jwt.>"] });
      const [header, payload, signature] = good.split(".") as [string, string, string];
      const none = `${Buffer.from(JSON.stringify({ alg: "none" })).toString("base64url")}.${payload}.`;
      const widened = Buffer.from(JSON.stringify({ ...JSON.parse(Buffer.from(payload, "base64url").toString()), runnel_publish: [">"] })).toString("base64url");
      for (const jwt of [none, `${header}.${widened}.${signature}`]) {
        expect(await outcome(() => events.publish({ topic: "anything.x", data: enc("x") }, { headers: bearer(jwt) }))).toBe(Code.Unauthenticated);
      }
    });
  });

  describe("/metrics and /healthz", () => {
    it("/metrics needs an admin token; /healthz is open", async () => {
      expect((await fetch(`${server.url}/metrics`)).status).toBe(401);
      expect((await fetch(`${server.url}/metrics`, { headers: bearer(TOKENS.writer) })).status).toBe(403);
      const res = await fetch(`${server.url}/metrics`, { headers: bearer(TOKENS.admin) });
      expect(res.status).toBe(200);
      const samples = parseProm(await res.text());
      expect(promValue(samples, "runnel_auth_refused_total", { code: "unauthenticated" })).toBeGreaterThan(0);
      expect(promValue(samples, "runnel_auth_refused_total", { code: "permission_denied" })).toBeGreaterThan(0);
      expect((await fetch(`${server.url}/healthz`)).status).toBe(200);
    });
  });
});
