/**
 * Answers for HTTP/1.1 requests node's parser refused before any handler ran
 * (headers too slow, request too slow, header block too large, garbage): the
 * right status line, then the connection is closed. Without this a
 * 'clientError' listener would close the socket with no answer at all.
 */
import type { Duplex } from "node:stream";

const STATUS: Record<string, string> = {
  ERR_HTTP_REQUEST_TIMEOUT: "408 Request Timeout",
  HPE_HEADER_OVERFLOW: "431 Request Header Fields Too Large",
};

/** Write a status for `err` if the socket can still take it, then close the socket. */
export function answerClientError(err: NodeJS.ErrnoException, socket: Duplex): void {
  const status = STATUS[err.code ?? ""] ?? "400 Bad Request";
  if (socket.writable && !(err.code === "ECONNRESET" || err.code === "EPIPE")) {
    socket.end(`HTTP/1.1 ${status}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
    // A peer that does not read must not hold the socket open: cut it if the answer does not flush.
    setTimeout(() => socket.destroy(), 1_000).unref();
  } else {
    socket.destroy();
  }
}

/** Total bytes of a request's header block (names and values), as received. */
export function headerBytes(rawHeaders: readonly string[]): number {
  let n = 0;
  for (const h of rawHeaders) n += h.length;
  return n;
}
