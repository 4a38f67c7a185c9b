/**
 * HTTP/1.1 has no PING, so the server turns on kernel TCP keepalive on every
 * accepted socket (idle time = --ping-interval-ms, at least 1 s): a host that
 * vanishes from a connection on which nothing flows is eventually found by
 * the kernel. This checks the kernel really has the keepalive timer armed on
 * the server's sockets, and that --ping-interval-ms 0 leaves it off.
 */
import net from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import type { RunnelServer } from "../../src/server.js";
import { serverSocketTimers } from "../harness/procfs.js";
import { startServer, waitFor } from "../harness/server.js";

const KEEPALIVE = 2;

async function idleConnection(server: RunnelServer, bytes?: string): Promise<net.Socket> {
  const socket = net.connect({ port: server.port, host: "127.0.0.1" });
  await new Promise<void>((resolve, reject) => socket.once("connect", resolve).once("error", reject));
  socket.on("data", () => undefined);
  if (bytes !== undefined) socket.write(bytes);
  return socket;
}

describe("TCP keepalive on accepted sockets", () => {
  let server: RunnelServer | undefined;
  const sockets: net.Socket[] = [];
  afterEach(async () => {
    for (const s of sockets.splice(0)) s.destroy();
    await server?.shutdown(500);
  });

  it("is armed on a fresh connection and on an idle HTTP/1.1 keep-alive connection", async () => {
    server = await startServer({ pingIntervalMs: 5_000 });
    const fresh = await idleConnection(server);
    const h1 = await idleConnection(server, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    sockets.push(fresh, h1);
    await waitFor(() => serverSocketTimers(server!.port).size === 2, 5_000, "both server sockets established");
    const timers = serverSocketTimers(server.port);
    expect(timers.get(fresh.localPort!)).toBe(KEEPALIVE);
    await waitFor(() => serverSocketTimers(server!.port).get(h1.localPort!) === KEEPALIVE, 5_000, "keepalive timer on the idle HTTP/1.1 socket");
  });

  it("is off when --ping-interval-ms is 0", async () => {
    server = await startServer({ pingIntervalMs: 0 });
    const fresh = await idleConnection(server);
    sockets.push(fresh);
    await waitFor(() => serverSocketTimers(server!.port).size === 1, 5_000, "server socket established");
    expect(serverSocketTimers(server.port).get(fresh.localPort!)).not.toBe(KEEPALIVE);
  });
});
