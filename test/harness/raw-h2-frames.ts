/**
 * HTTP/2 at the frame level over a bare TCP socket, for what node's http2
 * client will not send: floods of SETTINGS, PING or HEADERS+RST_STREAM,
 * frames larger than the peer allowed, more streams than it allowed. Headers
 * are HPACK literals without indexing or Huffman (every decoder takes them).
 */
import net from "node:net";

export const FRAME = { DATA: 0, HEADERS: 1, RST_STREAM: 3, SETTINGS: 4, PING: 6, GOAWAY: 7, WINDOW_UPDATE: 8 } as const;
export const FLAG = { END_STREAM: 0x1, ACK: 0x1, END_HEADERS: 0x4 } as const;
const PREFACE = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");

/** One received frame. */
export interface Frame {
  readonly type: number;
  readonly flags: number;
  readonly streamId: number;
  readonly payload: Buffer;
}

/** Encode one frame. */
export function frame(type: number, flags: number, streamId: number, payload: Buffer = Buffer.alloc(0)): Buffer {
  const head = Buffer.alloc(9);
  head.writeUIntBE(payload.length, 0, 3);
  head[3] = type;
  head[4] = flags;
  head.writeUInt32BE(streamId & 0x7fffffff, 5);
  return Buffer.concat([head, payload]);
}

function hpackInt(value: number, prefixBits: number, firstByte: number): Buffer {
  const max = (1 << prefixBits) - 1;
  if (value < max) return Buffer.from([firstByte | value]);
  const out = [firstByte | max];
  let v = value - max;
  while (v >= 128) {
    out.push((v % 128) + 128);
    v = Math.floor(v / 128);
  }
  out.push(v);
  return Buffer.from(out);
}

/** An HPACK header block of literals (no indexing, no Huffman). */
export function headerBlock(headers: Record<string, string>): Buffer {
  const parts: Buffer[] = [];
  for (const [name, value] of Object.entries(headers)) {
    parts.push(Buffer.from([0x00]), hpackInt(name.length, 7, 0), Buffer.from(name), hpackInt(Buffer.byteLength(value), 7, 0), Buffer.from(value));
  }
  return Buffer.concat(parts);
}

/** Request headers for a gRPC call of `path` on `authority`. */
export function grpcHeaders(authority: string, path: string): Record<string, string> {
  return { ":method": "POST", ":scheme": "http", ":authority": authority, ":path": path, "content-type": "application/grpc", te: "trailers" };
}

/** A raw HTTP/2 connection: write frames, read what the server sends, see when it closes. */
export class RawH2 {
  readonly frames: Frame[] = [];
  readonly closed: Promise<void>;
  private buffer = Buffer.alloc(0);

  private constructor(readonly socket: net.Socket) {
    socket.on("data", (chunk: Buffer) => this.onData(chunk));
    socket.on("error", () => undefined);
    this.closed = new Promise((resolve) => socket.once("close", () => resolve()));
  }

  /** Connect, send the preface and an empty SETTINGS, and ACK the server's SETTINGS as they come. */
  static async open(port: number): Promise<RawH2> {
    const socket = net.connect(port, "127.0.0.1");
    await new Promise<void>((resolve, reject) => {
      socket.once("connect", resolve);
      socket.once("error", reject);
    });
    const conn = new RawH2(socket);
    socket.write(Buffer.concat([PREFACE, frame(FRAME.SETTINGS, 0, 0)]));
    return conn;
  }

  write(data: Buffer): boolean {
    return !this.socket.destroyed && this.socket.write(data);
  }

  /** The server's SETTINGS values by identifier (from its first non-ACK SETTINGS frame). */
  serverSettings(): Map<number, number> {
    const s = this.frames.find((f) => f.type === FRAME.SETTINGS && (f.flags & FLAG.ACK) === 0);
    const out = new Map<number, number>();
    if (s !== undefined) for (let i = 0; i + 6 <= s.payload.length; i += 6) out.set(s.payload.readUInt16BE(i), s.payload.readUInt32BE(i + 2));
    return out;
  }

  /** The GOAWAY error code, if the server sent one. */
  goawayCode(): number | undefined {
    const g = this.frames.find((f) => f.type === FRAME.GOAWAY);
    return g?.payload.readUInt32BE(4);
  }

  /** RST_STREAM codes the server sent, by stream. */
  resets(): Map<number, number> {
    const out = new Map<number, number>();
    for (const f of this.frames) if (f.type === FRAME.RST_STREAM) out.set(f.streamId, f.payload.readUInt32BE(0));
    return out;
  }

  destroy(): void {
    this.socket.destroy();
  }

  private onData(chunk: Buffer): void {
    this.buffer = Buffer.concat([this.buffer, chunk]);
    while (this.buffer.length >= 9) {
      const length = this.buffer.readUIntBE(0, 3);
      if (this.buffer.length < 9 + length) return;
      const f: Frame = {
        type: this.buffer[3]!,
        flags: this.buffer[4]!,
        streamId: this.buffer.readUInt32BE(5) & 0x7fffffff,
        payload: Buffer.from(this.buffer.subarray(9, 9 + length)),
      };
      this.buffer = this.buffer.subarray(9 + length);
      // Keep the frames list bounded under floods: only what tests look at.
      if (this.frames.length < 10_000) this.frames.push(f);
      if (f.type === FRAME.SETTINGS && (f.flags & FLAG.ACK) === 0) this.write(frame(FRAME.SETTINGS, FLAG.ACK, 0));
    }
  }
}
