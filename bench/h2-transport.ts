/** The client transports the bench's subscriber and publisher processes use, all over h2c. */
import type { Transport } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport, createGrpcWebTransport } from "@connectrpc/connect-node";

/** Wire protocols the bench can drive. */
export type BenchProtocol = "grpc" | "connect" | "grpc-web";

/** A transport for `protocol` to `baseUrl`, over HTTP/2. */
export function transport(protocol: BenchProtocol, baseUrl: string): Transport {
  switch (protocol) {
    case "grpc":
      return createGrpcTransport({ baseUrl });
    case "connect":
      return createConnectTransport({ baseUrl, httpVersion: "2" });
    case "grpc-web":
      return createGrpcWebTransport({ baseUrl, httpVersion: "2" });
  }
}
