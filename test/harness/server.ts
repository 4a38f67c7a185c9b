/**
 * Start a real runnel server on 127.0.0.1:0 for a test, with tight bounds
 * where tests need them, and stop it afterwards.
 */
import { createServer, type RunnelServer, type ServerParts } from "../../src/server.js";
import type { Config } from "../../src/config.js";
import { pino } from "pino";

let fileDefaults: Partial<Config> = {};

/**
 * Settings every later startServer() of this test file starts from; lets one
 * suite rerun another against a different setup (the end-cause matrix on the
 * Redis bus) without copying it.
 */
export function setServerDefaults(config: Partial<Config>): void {
  fileDefaults = config;
}

/** Start a server on a free loopback port. */
export async function startServer(config: Partial<Config> = {}, parts: ServerParts = {}): Promise<RunnelServer> {
  const server = createServer(
    { host: "127.0.0.1", port: 0, graceMs: 2_000, logLevel: "silent", ...fileDefaults, ...config },
    { logger: pino({ level: process.env.RUNNEL_TEST_LOG ?? "silent" }), ...parts },
  );
  await server.listen();
  return server;
}

/** Poll `check` until it returns true, or fail after `timeoutMs` (a bound against hangs, not a timing goal). */
export async function waitFor(check: () => boolean | Promise<boolean>, timeoutMs = 10_000, what = "condition"): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** Wait until no stream is live on `server`, then check its bus holds no subscription either. */
export async function expectNoStreams(server: RunnelServer, timeoutMs = 5_000): Promise<void> {
  await waitFor(() => server.ledger.size === 0, timeoutMs, "ledger empty");
  if (server.bus.stats().subscriptionsActive !== 0) {
    throw new Error(`ledger is empty but the bus still has ${server.bus.stats().subscriptionsActive} subscriptions`);
  }
}
