/**
 * An in-test TCP relay between a client and the server, with the three
 * failures the lifecycle tests need that a well-behaved client never shows:
 * a reader that stops taking data (the server's writes back up into kernel
 * buffers), a peer that goes silent both ways without closing, and a
 * connection whose socket is destroyed. The relay forwards bytes by hand
 * (no pipe()) so that stopping really means the kernel buffers fill.
 */
import net, { type AddressInfo, type Socket } from "node:net";

/** One relayed connection: `client` faces the real client, `upstream` is the socket the server sees as its peer. */
export interface ProxyPair {
  readonly client: Socket;
  readonly upstream: Socket;
}

/** A running relay. */
export interface TcpProxy {
  /** http://127.0.0.1:PORT of the relay: give it to clients as their base URL. */
  readonly url: string;
  readonly port: number;
  /** Connections relayed so far (closed ones included). */
  readonly pairs: readonly ProxyPair[];
  /** Stop reading from the server: it can still be written to, but nothing it sends is taken. */
  stopServerToClient(): void;
  /** Take data from the server again and forward it. */
  resumeServerToClient(): void;
  /** Stop forwarding both ways and stop reading both sockets, without closing anything. */
  silence(): void;
  /**
   * Destroy the client's connection at the relay and, as a relay must, the
   * upstream socket with it: for the server this is its peer's socket vanishing.
   */
  destroyConnections(): void;
  /** Destroy everything and stop listening. */
  close(): Promise<void>;
}

/** Start a relay on 127.0.0.1:0 to `targetPort`. */
export async function startTcpProxy(targetPort: number, targetHost = "127.0.0.1"): Promise<TcpProxy> {
  const pairs: ProxyPair[] = [];
  let s2cStopped = false;
  let silent = false;

  const forward = (from: Socket, to: Socket, stopped: () => boolean): void => {
    from.on("data", (chunk: Buffer) => {
      if (to.destroyed) return;
      if (!to.write(chunk)) {
        from.pause();
        to.once("drain", () => {
          if (!stopped()) from.resume();
        });
      }
    });
    from.on("end", () => {
      if (!silent && !to.destroyed) to.end();
    });
    from.on("close", () => {
      if (!silent && !to.destroyed) to.destroy();
    });
    from.on("error", () => undefined);
  };

  const server = net.createServer((client) => {
    client.pause();
    const upstream = net.connect({ port: targetPort, host: targetHost });
    const pair = { client, upstream };
    pairs.push(pair);
    upstream.on("connect", () => {
      if (!silent) client.resume();
    });
    forward(client, upstream, () => silent);
    forward(upstream, client, () => silent || s2cStopped);
    if (silent) upstream.pause();
    else if (s2cStopped) upstream.pause();
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as AddressInfo).port;

  return {
    url: `http://127.0.0.1:${port}`,
    port,
    pairs,
    stopServerToClient() {
      s2cStopped = true;
      for (const p of pairs) p.upstream.pause();
    },
    resumeServerToClient() {
      s2cStopped = false;
      if (silent) return;
      for (const p of pairs) if (!p.upstream.destroyed) p.upstream.resume();
    },
    silence() {
      silent = true;
      for (const p of pairs) {
        p.upstream.pause();
        p.client.pause();
      }
    },
    destroyConnections() {
      for (const p of pairs) {
        p.client.destroy();
        p.upstream.destroy();
      }
    },
    close() {
      silent = false;
      for (const p of pairs) {
        p.client.destroy();
        p.upstream.destroy();
      }
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
