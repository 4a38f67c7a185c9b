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
  private readonly h2Sockets = new WeakSet<Socket>();

  get socketCount(): number {
    return this.sockets.size;
  }

  get sessionCount(): number {
    return this.sessions.size;
  }

  addSocket(socket: Socket): void {
    this.sockets.add(socket);
    socket.once("close", () => {
      this.sockets.delete(socket);
      this.busy.delete(socket);
    });
  }

  addSession(session: Http2Session): void {
    this.sessions.add(session);
    if (session.socket !== undefined) this.h2Sockets.add(session.socket as Socket);
    session.once("close", () => this.sessions.delete(session));
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
    return n <= 0;
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
      if (!this.isH2(socket) && !this.busy.has(socket)) socket.destroy();
    }
  }

  /** Destroy everything still open. */
  destroyAll(): void {
    for (const session of this.sessions) session.destroy();
    for (const socket of this.sockets) socket.destroy();
  }

  private isH2(socket: Socket): boolean {
    return this.h2Sockets.has(socket);
  }
}
