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
  /** Set by silenceConnections(): this connection alone is silent. */
  readonly silent: boolean;
}

/** A pair as the relay keeps it: its flag can be set. */
interface Relayed extends ProxyPair {
  silent: boolean;
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
  /** Stop forwarding both ways and stop reading both sockets, without closing anything (new connections too, for ever). */
  silence(): void;
  /**
   * Silence only the connections open now, as silence() does (nothing
   * forwarded, nothing read, nothing closed); connections made afterwards are
   * relayed normally: a client that gives up on a silent path can come back
   * through the same relay.
   */
  silenceConnections(): void;
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
  const pairs: Relayed[] = [];
  let s2cStopped = false;
  let silent = false;

  const forward = (from: Socket, to: Socket, stopped: () => boolean, muted: () => boolean): void => {
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
      if (!muted() && !to.destroyed) to.end();
    });
    from.on("close", () => {
      if (!muted() && !to.destroyed) to.destroy();
    });
    from.on("error", () => undefined);
  };

  const server = net.createServer((client) => {
    client.pause();
    const upstream = net.connect({ port: targetPort, host: targetHost });
    const pair: Relayed = { client, upstream, silent: false };
    pairs.push(pair);
    const muted = (): boolean => silent || pair.silent;
    upstream.on("connect", () => {
      if (!muted()) client.resume();
    });
    forward(client, upstream, muted, muted);
    forward(upstream, client, () => muted() || s2cStopped, muted);
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
      for (const p of pairs) if (!p.silent && !p.upstream.destroyed) p.upstream.resume();
    },
    silence() {
      silent = true;
      for (const p of pairs) {
        p.upstream.pause();
        p.client.pause();
      }
    },
    silenceConnections() {
      for (const p of pairs) {
        p.silent = true;
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
