/**
 * runnel.v1.TailService: Tail and ListFiles. Thin on purpose: it checks the
 * request, resolves the path inside the tail directories, and hands the
 * stream's life to the same stream core Subscribe uses; the follower it owns
 * is the stream's only resource (releasing it detaches from the shared file
 * source, which closes its watcher and fd when it was the last tailer).
 */
import { Code, ConnectError, type HandlerContext, type ServiceImpl } from "@connectrpc/connect";
import { create } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { clampHeartbeat, streamLimitsOf, type Config } from "../config.js";
import { openFramedStream, openStream, type LiveStream, type StreamSettings } from "../stream/live-stream.js";
import type { OpenFramed } from "../stream/fast-path.js";
import type { Ledger } from "../stream/ledger.js";
import { decodeTailCursor, encodeTailCursor } from "../tail/cursor.js";
import { SourceRegistry } from "../tail/source-registry.js";
import { Follower, type FollowerSink, type StartAt } from "../tail/follower.js";
import type { GenerationChange } from "../tail/file-source.js";
import type { SplitLine } from "../tail/line-splitter.js";
import { normalizeRequestPath, TailDirs, TailPathError } from "../tail/tail-dirs.js";
import {
  ListFilesResponseSchema,
  TailService,
  type TailRequest,
  type TailRequestSchema,
  type TailResponse,
  type TailResponseSchema,
} from "../../gen/runnel/v1/tail_pb.js";
import { fileEventMessage, lineMessage, startedMessage, tailMessages } from "./tail-messages.js";
import { requireValid } from "./status.js";
import { principalOf, requireTail } from "../auth/access.js";
import { mayTail } from "../auth/rights.js";
import type { Limits } from "../limits/limits.js";

/** The Tail rpc as the ledger and metrics label it. */
export const TAIL_RPC = `${TailService.typeName}/Tail`;

/** Lines sent before following when the request leaves `lines` unset (as tail). */
const DEFAULT_LINES = 10;
const MAX_GREP_LENGTH = 1024;
/** How long a file the path no longer names must stay quiet before it is closed (late appends by its writer). */
const SETTLE_MS = 300;
/** Rough per-message overhead counted against the queue's byte bound. */
const LINE_OVERHEAD = 64;

/** What the tail service needs. */
export interface TailServiceDeps {
  readonly ledger: Ledger;
  readonly config: Config;
  /** Stream counts (per peer, per token, per file) and the tail line bound's hit counter (src/limits). */
  readonly limits: Limits;
}

/** The service plus its shared sources (for metrics). */
export interface TailServiceParts {
  readonly service: ServiceImpl<typeof TailService>;
  readonly sources: SourceRegistry;
  /** Tail on the lean write path (src/services/lean-routes.ts): the same stream, producing wire bytes. */
  readonly openFramed: OpenFramed<typeof TailRequestSchema, typeof TailResponseSchema>;
}

type TailSetup = (stream: LiveStream<TailResponse>) => Promise<void>;

const PATH_CODE: Record<TailPathError["kind"], Code> = {
  denied: Code.PermissionDenied,
  invalid: Code.InvalidArgument,
  missing: Code.NotFound,
};

/** Build the TailService implementation; throws when a tail directory is unusable. */
export function createTailService(deps: TailServiceDeps): TailServiceParts {
  const { ledger, config, limits: caps } = deps;
  const dirs = new TailDirs(config.tailDirs);
  const sources = new SourceRegistry({ pollMs: config.tailPollMs, settleMs: SETTLE_MS });
  const limits = streamLimitsOf(config);
  /** A Tail request's stream settings and setup, shared by both write paths. */
  const tailParts = (req: TailRequest, ctx: HandlerContext): [StreamSettings, TailSetup] => {
    const heartbeatMs = clampHeartbeat(config, req.heartbeatMs);
    const path = normalizeRequestPath(req.path);
    const tally = caps.streamTally(ctx, principalOf(ctx), { tailPath: path });
    const settings: StreamSettings = { rpc: TAIL_RPC, path, tally, limits, policy: "disconnect", heartbeatMs };
    const setup = async (stream: LiveStream<TailResponse>): Promise<void> => {
      caps.admitStream(tally);
      const grep = grepOf(req.grep);
      const at = startOf(req);
      const follow = req.follow ?? true;
      const resolved = await dirs.resolve(req.path).catch((e: unknown) => {
        throw e instanceof TailPathError ? new ConnectError(e.message, PATH_CODE[e.kind]) : e;
      });
      requireTail(ctx, resolved.display);
      if (stream.ended) return; // the client left while the path was checked
      const follower = new Follower(new StreamSink(stream, caps), {
        maxLineBytes: config.maxLineBytes,
        grep,
        partialFlushMs: config.tailPartialFlushMs,
        maxLagBytes: config.maxQueueBytes,
        follow,
      });
      const source = sources.attach(resolved.real, follower);
      follower.attach(source);
      // Owned before anything can fail: one release path for the follower, the source's refcount with it.
      stream.own("tail_follower", follower);
      if (!source.exists && !follow) throw new ConnectError(`"${resolved.display}" does not exist`, Code.NotFound);
      const id = source.identity;
      const head = id === undefined ? "" : encodeTailCursor({ file: id, offset: source.size() });
      stream.send(startedMessage(stream.id, resolved.display, heartbeatMs, source.exists, head));
      stream.startAt(follower.start(at));
      stream.onDrain(follower);
    };
    return [settings, setup];
  };
  const service: ServiceImpl<typeof TailService> = {
    tail(req: TailRequest, ctx: HandlerContext) {
      const [settings, setup] = tailParts(req, ctx);
      return openStream<TailResponse>(ctx, ledger, settings, tailMessages, setup);
    },

    async listFiles(_req, ctx: HandlerContext) {
      const rights = principalOf(ctx).rights;
      const files = (await dirs.list()).filter((f) => mayTail(rights, f.path));
      return create(ListFilesResponseSchema, {
        files: files.map((f) => ({ path: f.path, size: BigInt(f.size), modified: timestampFromMs(Math.floor(f.modifiedMs)) })),
      });
    },
  };
  const openFramed: OpenFramed<typeof TailRequestSchema, typeof TailResponseSchema> = (req, ctx, output) => {
    const [settings, setup] = tailParts(req, ctx);
    return openFramedStream<TailResponse>(ctx, ledger, settings, tailMessages, setup, output);
  };
  return { service, sources, openFramed };
}

/** Follower output into a Tail stream (a class: one object per stream, no closures). */
class StreamSink implements FollowerSink {
  constructor(
    private readonly stream: LiveStream<TailResponse>,
    private readonly limits: Limits,
  ) {}

  line(line: SplitLine, cursor: string): void {
    if (line.truncated) this.limits.noteHit("tail_line_bytes");
    this.stream.deliver(lineMessage(line, cursor), line.text.length + LINE_OVERHEAD);
  }

  fileEvent(kind: GenerationChange | "lost", message: string, cursor: string, lostBytes: number): void {
    this.stream.send(fileEventMessage(kind, message, cursor, lostBytes));
  }

  hasRoom(): boolean {
    return this.stream.hasRoom();
  }

  overflow(lagBytes: number): void {
    this.stream.close("slow_consumer", `tailer fell behind: ${lagBytes} unread bytes while its queue was full`);
  }

  done(): void {
    this.stream.complete();
  }
}

function grepOf(pattern: string): RegExp | undefined {
  if (pattern === "") return undefined;
  requireValid(pattern.length > MAX_GREP_LENGTH ? `grep is longer than ${MAX_GREP_LENGTH} characters` : undefined);
  try {
    return new RegExp(pattern);
  } catch (e) {
    throw new ConnectError(`grep is not a valid regular expression: ${(e as Error).message}`, Code.InvalidArgument);
  }
}

function startOf(req: TailRequest): StartAt {
  if (req.afterCursor !== "") {
    const position = decodeTailCursor(req.afterCursor);
    requireValid(position === undefined ? "after_cursor is not a tail cursor issued by runnel" : undefined);
    return { kind: "after", position: position! };
  }
  return { kind: "last", lines: req.lines ?? DEFAULT_LINES };
}
