/**
 * Every socket and HTTP/2 session the server accepted, so shutdown can close
 * them itself (`server.close()` never finishes while HTTP/2 sessions are
 * open, and an HTTP/1.1 server that never called listen() tracks nothing).
 */
import type { Socket } from "node:net";
import type { Http2Session } from "node:http2";

/** Tracks open sockets, their in-flight HTTP/1.1 requests, and HTTP/2 sessions. */
export class Connections {
  private readonly sockets = new Set<Socket>();
  private readonly sessions = new Set<Http2Session>();
  private readonly busy = new Map<Socket, number>();
  /** Sockets handed to the HTTP/1.1 server (positively marked: `session.socket` is a proxy, not the socket). */
  private readonly h1Sockets = new WeakSet<Socket>();
  private readonly quietWaiters = new Set<() => void>();

  get socketCount(): number {
    return this.sockets.size;
  }

  get sessionCount(): number {
    return this.sessions.size;
  }

  addSocket(socket: Socket): void {
    if (this.sockets.has(socket)) return;
    this.sockets.add(socket);
    socket.once("close", () => {
      this.sockets.delete(socket);
      this.busy.delete(socket);
      this.checkQuiet();
    });
  }

  /**
   * Record which server a socket was handed to. Only sockets handed to the
   * HTTP/1.1 server are ever closed as idle HTTP/1.1 connections; an HTTP/2
   * socket must be left to its session's GOAWAY. (With TLS this is the
   * TLSSocket, tracked besides the raw socket it wraps.)
   */
  routed(socket: Socket, kind: "h1" | "h2"): void {
    this.addSocket(socket);
    if (kind === "h1") this.h1Sockets.add(socket);
  }

  addSession(session: Http2Session): void {
    this.sessions.add(session);
    session.once("close", () => {
      this.sessions.delete(session);
      this.checkQuiet();
    });
  }

  /** Count an HTTP/1.1 request as in flight on its socket. */
  requestStarted(socket: Socket): void {
    this.busy.set(socket, (this.busy.get(socket) ?? 0) + 1);
  }

  /** Mark the end of an HTTP/1.1 request; returns whether its socket is now idle. */
  requestDone(socket: Socket): boolean {
    const n = (this.busy.get(socket) ?? 1) - 1;
    if (n <= 0) this.busy.delete(socket);
    else this.busy.set(socket, n);
    this.checkQuiet();
    return n <= 0;
  }

  /** True when no HTTP/2 session is open and no HTTP/1.1 request is in flight. */
  get quiet(): boolean {
    return this.sessions.size === 0 && this.busy.size === 0;
  }

  /**
   * Resolves once `quiet`, or after `timeoutMs`; returns whether it got quiet.
   * Shutdown waits for this after the streams ended: a stream's body finishes
   * before connect-es has written its Closing and final status, and
   * destroying the sockets right then would turn that status into a reset.
   */
  whenQuiet(timeoutMs: number): Promise<boolean> {
    if (this.quiet) return Promise.resolve(true);
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        this.quietWaiters.delete(done);
        resolve(this.quiet);
      };
      const timer = setTimeout(done, Math.max(0, timeoutMs));
      this.quietWaiters.add(done);
    });
  }

  /** Send GOAWAY on every HTTP/2 session (streams in flight may finish) and close idle HTTP/1.1 sockets. */
  closeGracefully(): void {
    for (const session of this.sessions) {
      if (!session.closed) session.close();
    }
    this.closeIdleH1();
  }

  /** Close HTTP/1.1 keep-alive sockets that carry no request right now. */
  closeIdleH1(): void {
    for (const socket of this.sockets) {
      if (this.h1Sockets.has(socket) && !this.busy.has(socket)) socket.destroy();
    }
  }

  /** Destroy everything still open. */
  destroyAll(): void {
    for (const session of this.sessions) session.destroy();
    for (const socket of this.sockets) socket.destroy();
  }

  private checkQuiet(): void {
    if (!this.quiet || this.quietWaiters.size === 0) return;
    for (const wake of [...this.quietWaiters]) wake();
  }
}
