/**
 * Rights decisions: pattern containment (a right admits a subscription only
 * when every topic the subscription could match is admitted), tail path
 * globs, the auth file's validation, and the loopback rule for --host.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { loadAuthFile, parseAuthFile } from "../../src/auth/auth-file.js";
import { createServer } from "../../src/server.js";
import { globMatches, mayTail, patternContains, type Rights } from "../../src/auth/rights.js";
import { matches } from "../../src/bus/topic.js";
import { ConfigError, parseServeArgs } from "../../src/config.js";

const token = fc.constantFrom("a", "b", "c");
/** Small alphabets so that patterns and topics collide often. */
const topicArb = fc.array(token, { minLength: 1, maxLength: 4 }).map((t) => t.join("."));
const patternArb = fc
  .tuple(fc.array(fc.constantFrom("a", "b", "*"), { minLength: 1, maxLength: 4 }), fc.boolean())
  .map(([tokens, tail]) => (tail ? [...tokens.slice(0, -1), ">"] : tokens).join("."));

describe("patternContains", () => {
  it("the cases from the issue", () => {
    expect(patternContains("orders.eu.*", "orders.eu.created")).toBe(true);
    expect(patternContains("orders.eu.*", "orders.eu.*")).toBe(true);
    expect(patternContains("orders.eu.*", "orders.>")).toBe(false);
    expect(patternContains("orders.eu.*", "orders.*.created")).toBe(false);
    expect(patternContains("orders.eu.*", "orders.eu.>")).toBe(false);
    expect(patternContains("orders.>", "orders.eu.>")).toBe(true);
    expect(patternContains("orders.>", "orders.*")).toBe(true);
    expect(patternContains("orders.>", "orders")).toBe(false);
    expect(patternContains(">", "a.>")).toBe(true);
    expect(patternContains("*.>", ">")).toBe(false);
  });

  it("is sound: whatever it admits, every topic the pattern matches is matched by the right", () => {
    fc.assert(
      fc.property(patternArb, patternArb, topicArb, (right, asked, topic) => {
        if (patternContains(right, asked) && matches(asked, topic)) expect(matches(right, topic)).toBe(true);
      }),
      { numRuns: 20_000 },
    );
  });

  it("is complete on this alphabet: when every topic of the pattern is matched by the right, it admits", () => {
    // Topics over {a,b,c} up to 5 tokens (c stands for any token the right does not name).
    const all: string[] = [];
    const grow = (prefix: string[]): void => {
      if (prefix.length > 0) all.push(prefix.join("."));
      if (prefix.length < 5) for (const t of ["a", "b", "c"]) grow([...prefix, t]);
    };
    grow([]);
    fc.assert(
      fc.property(patternArb, patternArb, (right, asked) => {
        const covered = all.filter((t) => matches(asked, t)).every((t) => matches(right, t));
        // '>' reaches beyond 5 tokens: only claim completeness where the pattern is bounded or the right ends in '>'.
        if (covered && (!asked.endsWith(">") || right.endsWith(">"))) expect(patternContains(right, asked)).toBe(true);
      }),
      { numRuns: 5_000 },
    );
  });
});

describe("tail rights", () => {
  const rights: Rights = { publish: [], subscribe: [], tail: ["app/*.log", "audit/**"], admin: false };
  it("globs: * within a segment, ** across segments", () => {
    expect(mayTail(rights, "app/web.log")).toBe(true);
    expect(mayTail(rights, "app/web.txt")).toBe(false);
    expect(mayTail(rights, "app/sub/web.log")).toBe(false);
    expect(mayTail(rights, "audit/2026/11/x.log")).toBe(true);
    expect(mayTail(rights, "audit")).toBe(true);
    expect(globMatches("**/x.log", "a/b/x.log")).toBe(true);
    expect(globMatches("a.log", "aXlog")).toBe(false);
  });
  it("never admits a path that climbs or is absolute, whatever the right", () => {
    const everything: Rights = { ...rights, tail: ["**"] };
    for (const p of ["../etc/passwd", "app/../../x", "/etc/passwd", "app//x.log", "./app/x.log", ""]) expect(mayTail(everything, p), p).toBe(false);
  });
});

describe("auth file", () => {
  const hash = "a".repeat(64);
  const bad: [unknown, RegExp][] = [
    [[], /must be a JSON object/],
    [{}, /nobody could get in/],
    [{ tokens: [{ name: "x", sha256: "short" }] }, /sha256 must be 64 hex digits/],
    [{ tokens: [{ name: "x", sha256: hash }, { name: "x", sha256: "b".repeat(64) }] }, /appears twice/],
    [{ tokens: [{ name: "x", sha256: hash }, { name: "y", sha256: hash }] }, /same hash appears twice/],
    [{ tokens: [{ name: "x", sha256: hash, subscribe: ["a.>.b"] }] }, /may only be the last token/],
    [{ tokens: [{ name: "x", sha256: hash, publish: "a.b" }] }, /must be an array of strings/],
    [{ tokens: [{ name: "x", sha256: hash, tail: ["../x"] }] }, /relative path pattern/],
    [{ tokens: [{ name: "x", sha256: hash, admin: "yes" }] }, /must be true or false/],
    [{ jwt: { issuer: "x" } }, /"jwks"/],
  ];
  it("a missing or unparsable file is a ConfigError naming it, and the server does not start", () => {
    expect(() => loadAuthFile("/nonexistent/auth.json")).toThrow(/--auth \/nonexistent\/auth\.json: ENOENT/);
    expect(() => createServer({ port: 0, auth: "/nonexistent/auth.json" })).toThrow(ConfigError);
    expect(() => createServer({ port: 0, host: "0.0.0.0" })).toThrow(/--insecure-public/);
  });
  for (const [raw, message] of bad) {
    it(`refuses ${JSON.stringify(raw).slice(0, 60)}`, () => {
      expect(() => parseAuthFile(raw, "/tmp/auth.json")).toThrow(ConfigError);
      expect(() => parseAuthFile(raw, "/tmp/auth.json")).toThrow(message);
    });
  }
});

describe("--host without --auth", () => {
  it("a non-loopback host needs --auth or --insecure-public", () => {
    for (const host of ["0.0.0.0", "::", "10.1.2.3", "example.com"]) {
      expect(() => parseServeArgs(["--host", host], {}), host).toThrow(/--insecure-public/);
      expect(parseServeArgs(["--host", host, "--insecure-public"], {}).host).toBe(host);
    }
    for (const host of ["127.0.0.1", "127.9.9.9", "::1", "[::1]", "localhost"]) expect(parseServeArgs(["--host", host], {}).host).toBe(host);
  });
});
