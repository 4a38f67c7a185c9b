/**
 * The live page in a real browser (Debian's chromium through playwright-core):
 * it loads from runnel itself, subscribes, publishes, shows the event, lists
 * the active stream; switching topic and closing the tab end the server
 * stream at once. A second server checks CORS from the browser's side: a
 * page on one origin may call a server that allows that origin, and only then.
 */
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { chromium, type Browser } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RunnelServer } from "../../src/server.js";
import { ROOT, ensureBuilt } from "../harness/built.js";
import { causesSince, snapshot } from "../harness/lifecycle.js";
import { startServer, waitFor } from "../harness/server.js";

const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
const OUTPUT = join(ROOT, "test-output");

describe("the live page in Chromium", () => {
  let server: RunnelServer;
  let browser: Browser;
  beforeAll(async () => {
    ensureBuilt();
    server = await startServer({ heartbeatMs: 60_000 });
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-quic", "--no-first-run", "--disable-component-update", "--disable-sync"],
    });
  }, 120_000);
  afterAll(async () => {
    await browser?.close();
    await server?.shutdown(1_000);
  });

  it("subscribe, publish, see the event; switching topic and closing the tab end the server stream at once", async () => {
    const before = snapshot(server);
    const page = await browser.newPage();
    const errors: string[] = [];
    page.on("pageerror", (e) => errors.push(e.message));
    const response = await page.goto(server.url);
    expect(response?.status()).toBe(200);
    expect(response?.headers()["content-type"]).toBe("text/html; charset=utf-8");
    await page.waitForSelector("body[data-ready=true]");
    // No tail directory here (and no TailService until it lands): the file picker says so instead of failing.
    await waitFor(async () => (await page.locator("#files").isDisabled()) && !(await page.textContent("#files"))!.includes("loading"), 10_000, "file list loaded");
    expect(await page.textContent("#files")).toMatch(/not available on this server|no tailable files/);

    await page.fill("#pattern", "page.>");
    await page.fill("#last", "0");
    await page.click("#watch");
    await waitFor(() => server.ledger.size === 1, 10_000, "the page's stream on the server");
    expect(server.ledger.list()[0]).toMatchObject({ topic: "page.>", protocol: "connect http/1.1" });
    await page.waitForSelector("#status.live");

    await page.fill("#publish-topic", "page.demo");
    await page.fill("#publish-data", "hello from the page");
    await page.click("#publish");
    const item = page.locator('#events li[data-kind=event][data-topic="page.demo"]');
    await item.waitFor();
    expect(await item.textContent()).toContain("hello from the page");
    expect(await item.getAttribute("data-seq")).toBe("1");
    expect(await page.textContent("#publish-result")).toBe("published #1");
    await waitFor(async () => (await page.textContent("#stream-count")) === "1", 10_000, "active streams table shows the page's stream");
    expect(await page.textContent("#streams")).toContain("page.>");
    mkdirSync(OUTPUT, { recursive: true });
    await page.screenshot({ path: join(OUTPUT, "page.png"), fullPage: true });

    // Switching topic: the old stream ends at once, one new stream replaces it.
    const first = server.ledger.list()[0]!.id;
    await page.fill("#pattern", "other.*");
    await page.click("#watch");
    await waitFor(() => server.ledger.size === 1 && server.ledger.list()[0]!.id !== first, 2_000, "old stream replaced within 2 s");
    expect(server.ledger.list()[0]!.topic).toBe("other.*");

    await page.close();
    await waitFor(() => server.ledger.size === 0, 2_000, "no stream left within 2 s of closing the page");
    expect(causesSince(server, before)).toEqual({ disconnect: 2 });
    expect(server.bus.stats().subscriptionsActive).toBe(0);
    expect(errors).toEqual([]);
  });

  it("a server restarted on the same port: the page resumes by itself and shows the new server's events", async () => {
    let restarting = await startServer({ heartbeatMs: 60_000, retryAfterMs: 100 });
    const port = restarting.port;
    try {
      const page = await browser.newPage();
      await page.goto(restarting.url);
      await page.waitForSelector("body[data-ready=true]");
      await page.fill("#pattern", "again.>");
      await page.click("#watch");
      await waitFor(() => restarting.ledger.size === 1, 10_000, "the page's stream");
      await restarting.shutdown(2_000);
      await page.waitForSelector("#status.retrying");
      restarting = await startServer({ heartbeatMs: 60_000, port });
      await waitFor(() => restarting.ledger.size === 1, 15_000, "the page's stream on the new server");
      await page.fill("#publish-topic", "again.x");
      await page.fill("#publish-data", "after the restart");
      await page.click("#publish");
      await page.locator('#events li[data-kind=event][data-topic="again.x"]').waitFor();
      expect(await page.textContent("#events")).toContain("server closing the stream (shutdown");
      await page.close();
      await waitFor(() => restarting.ledger.size === 0, 2_000, "no stream left after closing the page");
    } finally {
      await restarting.shutdown(1_000);
    }
  });

  it("CORS: a page on another origin may call runnel only when --cors-origin allows it", async () => {
    const allowing = await startServer({ corsOrigins: [server.url] });
    const other = await startServer();
    try {
      const page = await browser.newPage();
      // Any document of the first server's origin without the live page's CSP (which allows only its own origin).
      await page.goto(`${server.url}/healthz`);
      const call = (url: string) =>
        page.evaluate(async (target) => {
          try {
            const r = await fetch(`${target}/runnel.v1.EventService/Publish`, {
              method: "POST",
              headers: { "content-type": "application/json", "connect-protocol-version": "1" },
              body: JSON.stringify({ topic: "cors.demo", data: "aGk=" }),
            });
            return { status: r.status, body: (await r.json()) as { seq?: string } };
          } catch (e) {
            return { error: String(e) };
          }
        }, url);
      expect(await call(allowing.url)).toEqual({ status: 200, body: expect.objectContaining({ seq: "1" }) });
      expect(await call(other.url)).toEqual({ error: "TypeError: Failed to fetch" });
      // The refused preflight published nothing.
      expect(other.bus.stats().retainedEvents).toBe(0);
      await page.close();
    } finally {
      await allowing.shutdown(1_000);
      await other.shutdown(1_000);
    }
  });
});
