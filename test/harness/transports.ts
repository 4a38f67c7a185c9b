/**
 * The five client transports every lifecycle test runs over: Connect over
 * HTTP/1.1 and HTTP/2, gRPC over HTTP/2, gRPC-web over HTTP/1.1 and HTTP/2.
 */
import type { Transport } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport, createGrpcWebTransport } from "@connectrpc/connect-node";

/** One row of the transport matrix. */
export interface TransportCase {
  readonly name: string;
  readonly http2: boolean;
  create(baseUrl: string): Transport;
}

/** Every transport runnel serves. */
export const TRANSPORTS: readonly TransportCase[] = [
  { name: "connect http/1.1", http2: false, create: (baseUrl) => createConnectTransport({ baseUrl, httpVersion: "1.1" }) },
  { name: "connect h2", http2: true, create: (baseUrl) => createConnectTransport({ baseUrl, httpVersion: "2" }) },
  { name: "grpc h2", http2: true, create: (baseUrl) => createGrpcTransport({ baseUrl }) },
  { name: "grpc-web http/1.1", http2: false, create: (baseUrl) => createGrpcWebTransport({ baseUrl, httpVersion: "1.1" }) },
  { name: "grpc-web h2", http2: true, create: (baseUrl) => createGrpcWebTransport({ baseUrl, httpVersion: "2" }) },
];
