/**
 * One port for HTTP/1.1 and cleartext HTTP/2: look at the first bytes of a
 * connection; the HTTP/2 client preface goes to the h2 server, anything else
 * to the HTTP/1.1 server. (After `unshift`, the HTTP/1.1 server needs the
 * socket resumed; the HTTP/2 server must not get `resume()`.)
 */
import type { Socket } from "node:net";

const PREFACE = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");

/** Where a sniffed connection goes. */
export interface PrefaceTargets {
  h1(socket: Socket): void;
  h2(socket: Socket): void;
}

/** Peek at a new connection and hand it to the right server. Bytes are never lost. */
export function routeByPreface(socket: Socket, targets: PrefaceTargets, sniffTimeoutMs = 10_000): void {
  let seen: Buffer = Buffer.alloc(0);
  const timer = setTimeout(() => socket.destroy(), sniffTimeoutMs);
  timer.unref();
  const done = (): void => {
    clearTimeout(timer);
    socket.off("data", onData);
    socket.off("close", onClose);
    socket.pause();
    socket.unshift(seen);
  };
  const onClose = (): void => clearTimeout(timer);
  const onData = (chunk: Buffer): void => {
    seen = seen.length === 0 ? chunk : Buffer.concat([seen, chunk]);
    const n = Math.min(seen.length, PREFACE.length);
    const prefix = seen.subarray(0, n).equals(PREFACE.subarray(0, n));
    if (prefix && seen.length < PREFACE.length) return; // could still be HTTP/2: wait for more
    done();
    if (prefix) {
      targets.h2(socket);
    } else {
      targets.h1(socket);
      socket.resume();
    }
  };
  socket.on("data", onData);
  socket.on("close", onClose);
}
