/**
 * Property-based fuzzing of the command line: `runnel serve` argument and
 * environment parsing, and the client commands publish, streams and
 * hash-token run in-process against a real server. Every input ends in a
 * Config (or an exit code) or one clean, known error; nothing else escapes.
 */
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { CliError } from "../../src/cli/common.js";
import { hashTokenCommand } from "../../src/cli/hash-token.js";
import { publish } from "../../src/cli/publish.js";
import { streams } from "../../src/cli/streams.js";
import { ConfigError, DEFAULTS, parseServeArgs } from "../../src/config.js";
import type { RunnelServer } from "../../src/server.js";
import { expectNoStreams, startServer } from "../harness/server.js";

const SERVE_FLAGS = [
  ...Object.keys(DEFAULTS).map((k) => `--${k.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`),
  "--tail-dir", "--auth", "--insecure-public", "--help", "--nope", "-x", "--", "--port=1",
];
const VALUES = fc.oneof(
  fc.constantFrom("0", "1", "-1", "65535", "65536", "1e3", "0x10", " 7 ", "", "9007199254740993", "memory", "redis://x", "127.0.0.1", "0.0.0.0", "NaN"),
  fc.string({ maxLength: 12 }),
  fc.nat().map(String),
);
const argvArb = fc.array(fc.oneof(fc.constantFrom(...SERVE_FLAGS), VALUES), { maxLength: 10 });
const envArb = fc.dictionary(fc.constantFrom("RUNNEL_PORT", "RUNNEL_HOST", "RUNNEL_MAX_STREAMS", "RUNNEL_HEARTBEAT_MS", "RUNNEL_BUS", "RUNNEL_TAIL_DIR", "RUNNEL_INSECURE_PUBLIC"), VALUES, { maxKeys: 4 });

/** Errors a command may end with: its own, or node's parseArgs errors (turned into one line by cli.ts). */
function isKnownError(e: unknown): boolean {
  return e instanceof CliError || e instanceof ConfigError || (e instanceof Error && "code" in e && String(e.code).startsWith("ERR_PARSE_ARGS"));
}

describe("fuzzing the command line", () => {
  it("parseServeArgs: a valid Config or a ConfigError, never anything else", () => {
    fc.assert(
      fc.property(argvArb, envArb, (argv, env) => {
        try {
          const c = parseServeArgs(argv, env);
          expect(c.port).toBeGreaterThanOrEqual(0);
          expect(c.port).toBeLessThanOrEqual(65535);
          for (const [k, v] of Object.entries(c)) if (typeof v === "number") expect(Number.isSafeInteger(v), k).toBe(true);
          expect(c.heartbeatMinMs).toBeLessThanOrEqual(c.heartbeatMaxMs);
        } catch (e) {
          expect(e, String(e)).toBeInstanceOf(ConfigError);
        }
      }),
      { numRuns: 3_000 },
    );
  });

  describe("client commands", () => {
    let server: RunnelServer;
    beforeAll(async () => {
      server = await startServer();
      vi.spyOn(console, "log").mockImplementation(() => undefined);
      vi.spyOn(console, "error").mockImplementation(() => undefined);
    });
    afterAll(async () => {
      vi.restoreAllMocks();
      await expectNoStreams(server);
      await server.shutdown(1_000);
    });

    const clientArgs = fc.array(
      fc.oneof(
        fc.constantFrom("--json", "--protocol", "connect", "grpc", "grpc-web", "smtp", "-H", "k=v", "=v", "--header", "--close", "--token", "--nope", "--url", "orders.eu.created", "a.*", "", "x".repeat(300)),
        fc.string({ maxLength: 10 }).filter((s) => s !== "-"), // "-" would read stdin
      ),
      { maxLength: 6 },
    );

    for (const [name, command] of [
      ["publish", publish],
      ["streams", streams],
    ] as const) {
      it(`${name}: an exit code or one clean error`, async () => {
        await fc.assert(
          fc.asyncProperty(clientArgs, async (args) => {
            // Point every call at the test server unless the input names its own --url.
            const argv = args.includes("--url") ? args : [...args, "--url", server.url];
            try {
              expect([0, 1, 2]).toContain(await command(argv));
            } catch (e) {
              expect(isKnownError(e), String(e)).toBe(true);
            }
          }),
          { numRuns: 120 },
        );
      });
    }

    it("hash-token: a hash or a clean error", async () => {
      await fc.assert(
        fc.asyncProperty(fc.array(fc.string({ maxLength: 20 }).filter((s) => s !== "-"), { maxLength: 3 }), async (argv) => {
          try {
            expect(await hashTokenCommand(argv)).toBe(0);
          } catch (e) {
            expect(e).toBeInstanceOf(CliError);
          }
        }),
        { numRuns: 200 },
      );
    });
  });
});
