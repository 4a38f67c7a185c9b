/**
 * The runnel server: one port for HTTP/1.1 and cleartext HTTP/2 (or TLS with
 * ALPN), Connect + gRPC + gRPC-web routes, /metrics and /healthz, HTTP/2
 * keepalive, the write-stall watchdog and graceful shutdown.
 */
import { connectNodeAdapter } from "@connectrpc/connect-node";
import { readFileSync } from "node:fs";
import http, { type IncomingMessage, type ServerResponse } from "node:http";
import http2, { type Http2ServerRequest, type Http2ServerResponse, type Http2Session } from "node:http2";
import net, { type AddressInfo, type Socket } from "node:net";
import tls from "node:tls";
import { pino, type Logger } from "pino";
import type { Bus } from "./bus/bus.js";
import { createMemoryBus } from "./bus/memory-bus.js";
import { busFromConfig, untilBusReady } from "./bus/redis-config.js";
import { ConfigError, DEFAULTS, type Config } from "./config.js";
import { createMetrics, type Metrics } from "./metrics.js";
import { Connections } from "./net/connections.js";
import { isDeadSession, keepAlive } from "./net/keepalive.js";
import { routeByPreface } from "./net/preface-router.js";
import { createAdminService } from "./services/admin-service.js";
import { registerIntrospection } from "./services/introspection.js";
import { CorsPolicy } from "./http/cors.js";
import { PageFiles } from "./http/page.js";
import { createEventService, createFastSubscribe, SUBSCRIBE_RPC } from "./services/event-service.js";
import { createTailService, TAIL_RPC } from "./services/tail-service.js";
import { createLeanRoutes } from "./services/lean-routes.js";
import { fastRoute } from "./stream/fast-writer.js";
import { Ledger } from "./stream/ledger.js";
import { createGate } from "./auth/gate.js";
import { hardeningProblem } from "./limits/hardening-config.js";
import { Limits } from "./limits/limits.js";
import { armHttp1Timeouts, guardRequestBody } from "./net/request-deadline.js";
import { answerClientError, headerBytes } from "./net/client-error.js";
import { NodeTransport, RequestValues } from "./stream/transport.js";
import { AdminService } from "../gen/runnel/v1/admin_pb.js";
import { EventService } from "../gen/runnel/v1/event_pb.js";
import { TailService } from "../gen/runnel/v1/tail_pb.js";

/** A running (or ready to run) server. */
export interface RunnelServer {
  readonly config: Config;
  readonly ledger: Ledger;
  readonly bus: Bus;
  readonly metrics: Metrics;
  readonly connections: Connections;
  /** Stream counts, publish rate and sizes; TailService asks it too (admitStream, hit). */
  readonly limits: Limits;
  readonly log: Logger;
  /** Base URL once listening, for example http://127.0.0.1:8080. */
  readonly url: string;
  readonly port: number;
  listen(): Promise<void>;
  /**
   * Graceful shutdown: refuse new work, send every stream Closing with its
   * resume cursor (they end with Unavailable), close HTTP/2 sessions and idle
   * sockets, wait up to the grace period, then cut whatever is left.
   */
  shutdown(graceMs?: number): Promise<void>;
  readonly shuttingDown: boolean;
}

/** Options that are not flags: injected parts for tests and embedding. */
export interface ServerParts {
  bus?: Bus;
  logger?: Logger;
}

type NodeRequest = IncomingMessage | Http2ServerRequest;
type NodeResponse = ServerResponse | Http2ServerResponse;

/** Build a server from a config. Nothing listens until `listen()`. */
export function createServer(partial: Partial<Config> = {}, parts: ServerParts = {}): RunnelServer {
  const config: Config = { ...DEFAULTS, ...partial };
  const hardening = hardeningProblem(config);
  if (hardening !== undefined) throw new ConfigError(hardening);
  const log = parts.logger ?? pino({ level: config.logLevel, base: undefined });
  const bus =
    parts.bus ??
    busFromConfig(config, log) ??
    createMemoryBus({
      retentionEvents: config.retentionEvents,
      retentionBytes: config.retentionBytes,
      maxTopics: config.maxTopics,
      maxRetainedBytes: config.maxRetainedBytes,
    });
  const ledger = new Ledger();
  const metrics = createMetrics(ledger, bus, [SUBSCRIBE_RPC, TAIL_RPC]);
  const gate = createGate(config.auth, metrics.registry);
  const limits = new Limits(config, ledger, metrics.registry);
  let tail: ReturnType<typeof createTailService>;
  try {
    tail = createTailService({ ledger, config, limits });
  } catch (e) {
    throw new ConfigError((e as Error).message);
  }
  metrics.setTailGauges(tail.sources);
  const connections = new Connections();
  let shuttingDown = false;
  let address: AddressInfo | undefined;
  const cors = new CorsPolicy(config.corsOrigins);
  const page = new PageFiles();

  const valuesOf = (req: NodeRequest): RequestValues => new RequestValues(new NodeTransport(req, isDeadSession));
  const eventDeps = { bus, ledger, config, limits, onPublished: (events: number) => metrics.published.inc(events) };
  const connectHandler = connectNodeAdapter({
    routes(router) {
      router.service(EventService, createEventService(eventDeps));
      router.service(TailService, tail.service);
      router.service(AdminService, createAdminService(ledger));
      // Last: health and reflection describe every service registered above.
      registerIntrospection(router, { ledger, config, serving: () => !shuttingDown });
    },
    // Without --auth every caller is ANONYMOUS (the context key's default): no interceptor, no cost.
    interceptors: gate.authenticator.enabled ? [gate.interceptor] : [],
    readMaxBytes: config.readMaxBytes,
    maxTimeoutMs: config.maxTimeoutMs,
    contextValues: valuesOf,
  });
  // Subscribe and Tail on the lean write path (src/stream/fast-path.ts), in front of connect-es's router.
  const leanRoutes = new Map<string, (req: NodeRequest, res: NodeResponse) => void>();
  if (config.leanSubscribe) {
    const streams = { subscribe: createFastSubscribe(eventDeps), tail: tail.openFramed };
    const admit = gate.authenticator.enabled ? gate.admit : undefined;
    for (const [path, handler] of createLeanRoutes(streams, config, admit)) {
      leanRoutes.set(path, fastRoute(handler, valuesOf, (e) => log.error({ err: e, path }, "stream failed")));
    }
  }

  function onRequest(req: NodeRequest, res: NodeResponse): void {
    const path = (req.url ?? "/").split("?")[0];
    if (!("stream" in req)) {
      const socket = req.socket;
      connections.requestStarted(socket);
      res.once("close", () => {
        if (connections.requestDone(socket) && shuttingDown) socket.destroy();
      });
      if (shuttingDown) res.setHeader("connection", "close");
    }
    if (req.method === "GET" && path === "/healthz") {
      res.writeHead(shuttingDown ? 503 : 200, { "content-type": "text/plain" });
      res.end(shuttingDown ? "shutting down\n" : "ok\n");
      return;
    }
    if (req.method === "GET" && path === "/metrics") {
      gate
        .scrapeStatus(req.headers.authorization)
        .then((status) => {
          if (status === 200) return metrics.render();
          res.writeHead(status, { "content-type": "text/plain", ...(status === 401 ? { "www-authenticate": "Bearer" } : {}) });
          res.end(status === 401 ? "bearer token required\n" : "admin right required\n");
          return undefined;
        })
        .then(
        (text) => {
          if (text === undefined) return;
          res.writeHead(200, { "content-type": metrics.contentType });
          res.end(text);
        },
        (e: unknown) => {
          log.error({ err: e }, "metrics failed");
          res.writeHead(500).end();
        },
      );
      return;
    }
    if (page.handles(req.method, path)) {
      page.serve(req, res, path);
      return;
    }
    if (cors.preflight(req, res)) return;
    cors.decorate(req, res);
    if ("stream" in req && headerBytes(req.rawHeaders) > config.maxHttpHeaderBytes) {
      // node's HTTP/2 server does not enforce the advertised SETTINGS_MAX_HEADER_LIST_SIZE itself.
      res.writeHead(431, { "content-type": "text/plain" });
      res.end("request header block too large\n");
      return;
    }
    if ("stream" in req) guardRequestBody(req, res as Http2ServerResponse, config.requestTimeoutMs, () => log.debug("http/2 request body too slow"));
    const lean = leanRoutes.get(path ?? "");
    if (lean !== undefined) lean(req, res);
    else connectHandler(req, res);
  }

  const h1 = http.createServer({ maxHeaderSize: config.maxHttpHeaderBytes }, onRequest);
  armHttp1Timeouts(h1, config.headersTimeoutMs, config.requestTimeoutMs);
  const h2 = http2.createServer(
    { settings: { maxConcurrentStreams: config.h2MaxConcurrentStreams, maxHeaderListSize: config.maxHttpHeaderBytes } },
    onRequest,
  );
  h1.on("clientError", (err: NodeJS.ErrnoException, socket) => {
    log.debug({ err }, "http/1.1 client error");
    answerClientError(err, socket);
  });
  h2.on("session", (session: Http2Session) => {
    connections.addSession(session);
    keepAlive(session, config.pingIntervalMs, config.pingTimeoutMs, () => {
      metrics.pingFailures.inc();
      log.info("http/2 peer did not answer PING; session closed");
    });
  });
  h2.on("sessionError", (err) => log.debug({ err }, "http/2 session error"));

  const toH1 = (socket: Socket): void => {
    connections.routed(socket, "h1");
    h1.emit("connection", socket);
  };
  const toH2 = (socket: Socket): void => {
    connections.routed(socket, "h2");
    h2.emit("connection", socket);
  };
  const front: net.Server =
    config.tlsCert !== undefined && config.tlsKey !== undefined
      ? tls.createServer(
          { cert: readFileSync(config.tlsCert), key: readFileSync(config.tlsKey), ALPNProtocols: ["h2", "http/1.1"] },
          (socket) => (socket.alpnProtocol === "h2" ? toH2(socket) : toH1(socket)),
        )
      : net.createServer((socket) => routeByPreface(socket, { h1: toH1, h2: toH2 }));
  front.on("connection", (socket: Socket) => {
    // Until the preface router hands it on, nobody else listens for this socket's errors: a peer that
    // resets the connection before its first byte would otherwise be an uncaught ECONNRESET.
    socket.on("error", (err) => log.debug({ err }, "socket error"));
    connections.addSocket(socket);
    // HTTP/1.1 has no PING: let the kernel probe connections on which nothing at all flows
    // (idle keep-alive sockets, streams between rare heartbeats) so a vanished host is found.
    // Same knob as the HTTP/2 PING interval; the kernel counts in whole seconds.
    if (config.pingIntervalMs > 0) socket.setKeepAlive(true, Math.max(1_000, config.pingIntervalMs));
  });

  // A write the peer has not taken within the bound ends its stream: this is what finds a
  // silent HTTP/1.1 peer (no PING there) once data is flowing.
  let watchdog: NodeJS.Timeout | undefined;
  const startWatchdog = (): void => {
    const every = Math.max(50, Math.min(1_000, Math.floor(config.writeTimeoutMs / 4)));
    watchdog = setInterval(() => {
      const now = Date.now();
      for (const entry of ledger.list()) {
        if (entry.writePendingMs(now) > config.writeTimeoutMs) {
          entry.cut("dead_peer", `peer took no data for ${config.writeTimeoutMs} ms`);
        }
      }
    }, every);
    watchdog.unref();
  };

  const server: RunnelServer = {
    config,
    ledger,
    bus,
    metrics,
    connections,
    limits,
    log,
    get url() {
      if (address === undefined) throw new Error("server is not listening");
      const host = address.family === "IPv6" ? `[${address.address}]` : address.address;
      return `${config.tlsCert !== undefined ? "https" : "http"}://${host}:${address.port}`;
    },
    get port() {
      return address?.port ?? 0;
    },
    get shuttingDown() {
      return shuttingDown;
    },
    async listen() {
      await untilBusReady(bus, log);
      return new Promise((resolve, reject) => {
        front.once("error", reject);
        front.listen(config.port, config.host, () => {
          front.off("error", reject);
          address = front.address() as AddressInfo;
          startWatchdog();
          resolve();
        });
      });
    },
    async shutdown(graceMs = config.graceMs) {
      if (shuttingDown) return;
      shuttingDown = true;
      const started = Date.now();
      front.close();
      ledger.refuseNew();
      for (const entry of ledger.list()) entry.close("shutdown", "server is shutting down");
      connections.closeGracefully();
      const drained = await ledger.whenEmpty(graceMs);
      if (!drained) {
        for (const entry of ledger.list()) entry.cut("shutdown", "server is shutting down");
      }
      // The streams' bodies are done, but connect-es may still be writing their Closing and
      // final status: let the exchanges finish (bounded by what is left of the grace period)
      // before destroying what remains, or clients would see a reset instead of Unavailable.
      await connections.whenQuiet(graceMs - (Date.now() - started));
      connections.destroyAll();
      clearInterval(watchdog);
      await bus.close();
      log.info({ ms: Date.now() - started, drained }, "shutdown complete");
    },
  };
  return server;
}
