/**
 * runnel.v1.EventService: Publish, PublishBatch and Subscribe. Thin on purpose: it
 * validates, translates between protobuf and the bus, and hands the stream's
 * life to the stream core.
 */
import { ConnectError, type HandlerContext, type ServiceImpl } from "@connectrpc/connect";
import { create } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import type { Bus, BusError, DeliverySink, GapNotice, StartPosition, StoredEvent } from "../bus/bus.js";
import { isPattern, patternProblem, topicProblem } from "../bus/topic.js";
import { clampHeartbeat, streamLimitsOf, type Config } from "../config.js";
import { openFramedStream, openStream, type LiveStream, type StreamSettings } from "../stream/live-stream.js";
import type { OpenFramed } from "../stream/fast-path.js";
import type { Ledger } from "../stream/ledger.js";
import {
  EventService,
  PublishBatchResponseSchema,
  PublishResponseSchema,
  SlowConsumerPolicy,
  type SubscribeRequestSchema,
  type SubscribeResponseSchema,
  type PublishBatchRequest,
  type PublishRequest,
  type PublishResponse,
  type SubscribeRequest,
  type SubscribeResponse,
} from "../../gen/runnel/v1/event_pb.js";
import { eventMessage, gapMessage, subscribedMessage, subscribeMessages } from "./subscribe-messages.js";
import { requireValid, statusOf } from "./status.js";
import { principalOf, requirePublish, requireSubscribe } from "../auth/access.js";
import type { Limits } from "../limits/limits.js";

/** Fully-qualified RPC names, as the ledger and metrics label them. */
export const SUBSCRIBE_RPC = `${EventService.typeName}/Subscribe`;

/** What the event service needs. */
export interface EventServiceDeps {
  readonly bus: Bus;
  readonly ledger: Ledger;
  readonly config: Config;
  /** Stream counts, publish rate and sizes (src/limits). */
  readonly limits: Limits;
  /** Called after each successful Publish or PublishBatch with the number of events it published (metrics). */
  readonly onPublished: (events: number) => void;
}

/** Build the EventService implementation. */
export function createEventService(deps: EventServiceDeps): ServiceImpl<typeof EventService> {
  const { bus, ledger } = deps;
  const subscribeParts = subscribePartsOf(deps);
  return {
    async publish(req: PublishRequest, ctx: HandlerContext) {
      deps.limits.admitPublish(ctx, principalOf(ctx));
      admitEvent(deps.limits, ctx, req);
      try {
        const event = await bus.publish(req.topic, req.data, req.headers);
        deps.onPublished(1);
        return responseOf(event);
      } catch (e) {
        throw statusOf(e);
      }
    },

    async publishBatch(req: PublishBatchRequest, ctx: HandlerContext) {
      const events = req.events;
      requireValid(events.length === 0 ? "a batch needs at least one event" : undefined);
      deps.limits.checkBatch(events.length);
      deps.limits.admitPublish(ctx, principalOf(ctx), events.length);
      // All-or-nothing admission: every event passes before any is published.
      for (let i = 0; i < events.length; i++) {
        try {
          admitEvent(deps.limits, ctx, events[i]!);
        } catch (e) {
          throw atIndex(i, e);
        }
      }
      let stored: StoredEvent[];
      try {
        stored = await bus.publishBatch(events);
      } catch (e) {
        throw statusOf(e);
      }
      deps.onPublished(stored.length);
      return create(PublishBatchResponseSchema, { results: stored.map(responseOf) });
    },

    subscribe(req: SubscribeRequest, ctx: HandlerContext) {
      const [settings, setup] = subscribeParts(req, ctx);
      return openStream<SubscribeResponse>(ctx, ledger, settings, subscribeMessages, setup);
    },
  };
}

/**
 * The checks of one event, the same for Publish and for each event of
 * PublishBatch (the rate is taken separately, per call): size limits
 * (ResourceExhausted), a valid topic and headers (InvalidArgument), the
 * caller's publish right for the topic (PermissionDenied).
 */
function admitEvent(limits: Limits, ctx: HandlerContext, event: PublishRequest): void {
  limits.checkEvent(event.topic, event.data, event.headers);
  requireValid(topicProblem(event.topic) ?? headersProblem(event.headers));
  requirePublish(ctx, event.topic);
}

/** The refusal of `events[i]`: its code, its message prefixed with its index. */
function atIndex(i: number, e: unknown): unknown {
  return e instanceof ConnectError ? new ConnectError(`events[${i}]: ${e.rawMessage}`, e.code) : e;
}

function responseOf(event: StoredEvent): PublishResponse {
  return create(PublishResponseSchema, { seq: event.seq, cursor: event.cursor, time: timestampFromMs(event.timeMs) });
}

/**
 * Subscribe on the lean write path (see src/stream/fast-path.ts): the same
 * stream as `createEventService(deps).subscribe`, producing wire bytes.
 */
export function createFastSubscribe(deps: EventServiceDeps): OpenFramed<typeof SubscribeRequestSchema, typeof SubscribeResponseSchema> {
  const subscribeParts = subscribePartsOf(deps);
  return (req, ctx, output) => {
    const [settings, setup] = subscribeParts(req, ctx);
    return openFramedStream<SubscribeResponse>(ctx, deps.ledger, settings, subscribeMessages, setup, output);
  };
}

type SubscribeSetup = (stream: LiveStream<SubscribeResponse>) => void;

/** A Subscribe request's stream settings and setup, shared by both write paths. */
function subscribePartsOf(deps: EventServiceDeps): (req: SubscribeRequest, ctx: HandlerContext) => [StreamSettings, SubscribeSetup] {
  const { bus, config } = deps;
  const limits = streamLimitsOf(config);
  return (req, ctx) => {
    const heartbeatMs = clampHeartbeat(config, req.heartbeatMs);
    const tally = deps.limits.streamTally(ctx, principalOf(ctx), { pattern: req.topic });
    const settings: StreamSettings = {
      rpc: SUBSCRIBE_RPC,
      topic: req.topic,
      tally,
      limits,
      policy: req.slowConsumer === SlowConsumerPolicy.DROP_OLDEST ? "drop-oldest" : "disconnect",
      heartbeatMs,
    };
    const setup = (stream: LiveStream<SubscribeResponse>): void => {
      deps.limits.admitStream(tally);
      deps.limits.checkTopic(req.topic, "pattern");
      requireValid(patternProblem(req.topic) ?? startProblem(req));
      requireSubscribe(ctx, req.topic);
      stream.send(subscribedMessage(stream.id, heartbeatMs, bus.headCursor()));
      try {
        const subscription = bus.subscribe({ pattern: req.topic, start: startOf(req) }, new StreamSink(stream));
        stream.own("bus_subscription", subscription);
        stream.startAt(subscription.startCursor);
        stream.onDrain(subscription);
      } catch (e) {
        throw statusOf(e);
      }
    };
    return [settings, setup];
  };
}


/** Bus deliveries into a Subscribe stream (a class: one object per stream, no closures). */
class StreamSink implements DeliverySink {
  constructor(private readonly stream: LiveStream<SubscribeResponse>) {}

  event(event: StoredEvent): void {
    this.stream.deliver(eventMessage(event), event.size);
  }

  gap(gap: GapNotice): void {
    this.stream.send(gapMessage(gap));
  }

  wantsMore(): boolean {
    return this.stream.hasRoom();
  }

  fail(error: BusError): void {
    this.stream.fail(statusOf(error));
  }
}

function startOf(req: SubscribeRequest): StartPosition {
  switch (req.start.case) {
    case "afterCursor":
      return { kind: "afterCursor", cursor: req.start.value };
    case "fromSeq":
      return { kind: "fromSeq", seq: req.start.value };
    case "last":
      return { kind: "last", count: req.start.value };
    case "earliest":
      return { kind: "earliest" };
    default:
      return { kind: "live" };
  }
}

function startProblem(req: SubscribeRequest): string | undefined {
  if (req.start.case === "fromSeq") {
    if (isPattern(req.topic)) return `from_seq needs an exact topic, not the pattern "${req.topic}"; use earliest, last or after_cursor`;
    if (req.start.value < 1n) return "from_seq counts from 1";
  }
  if (req.start.case === "afterCursor" && req.start.value === "") return "after_cursor is empty";
  if (req.start.case === "earliest" && !req.start.value) return "earliest must be true when set";
  return undefined;
}

function headersProblem(headers: Record<string, string>): string | undefined {
  for (const k of Object.keys(headers)) if (k === "") return "header names must not be empty";
  return undefined;
}
