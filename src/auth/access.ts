/**
 * The one place requests are let in: a Connect interceptor authenticates
 * every call, checks the kind of right its method needs (DOORS) and puts its
 * Principal in the context values; services ask `requirePublish` /
 * `requireSubscribe` / `requireTail` for the one thing each request touches.
 * AdminService needs `admin` for every method; a runnel method without a
 * rule in DOORS is refused, never let through.
 */
import type { DescMethod, DescService } from "@bufbuild/protobuf";
import { Code, ConnectError, createContextKey, type ContextValues, type HandlerContext, type Interceptor } from "@connectrpc/connect";
import { AdminService } from "../../gen/runnel/v1/admin_pb.js";
import { EventService } from "../../gen/runnel/v1/event_pb.js";
import { TailService } from "../../gen/runnel/v1/tail_pb.js";
import type { Authenticator } from "./authenticator.js";
import { TokenRefused } from "./jwt.js";
import { ANONYMOUS, mayPublish, maySubscribe, mayTail, type Principal } from "./rights.js";

/** Context key of the caller; ANONYMOUS (every right) when auth is off or the interceptor is not installed. */
export const principalKey = createContextKey<Principal>(ANONYMOUS, { description: "runnel principal" });

/** Where a service reports a PermissionDenied it decided (the metric); a no-op unless the interceptor set it. */
const deniedKey = createContextKey<(code: Code) => void>(() => undefined, { description: "runnel auth refusal counter" });

/**
 * The kind of right a method needs at the door: the caller must hold at least
 * one right of that kind ("authenticated": none, the handler decides what to
 * show). The handler then checks the exact topic or path it touches.
 */
export type Door = "publish" | "subscribe" | "tail" | "admin" | "authenticated";

/** The door of every runnel method, by "package.Service/Method". A runnel method missing here is refused. */
export const DOORS: Readonly<Record<string, Door>> = {
  [`${EventService.typeName}/Publish`]: "publish",
  [`${EventService.typeName}/PublishBatch`]: "publish",
  [`${EventService.typeName}/Subscribe`]: "subscribe",
  [`${TailService.typeName}/Tail`]: "tail",
  [`${TailService.typeName}/ListFiles`]: "authenticated",
  [`${AdminService.typeName}/ListStreams`]: "admin",
  [`${AdminService.typeName}/CloseStream`]: "admin",
};

/** Services whose methods must each have a rule in DOORS (the others, health and reflection, need only a caller). */
const RUNNEL_SERVICES: ReadonlySet<string> = new Set([EventService.typeName, TailService.typeName, AdminService.typeName]);

/** Authenticate every call; refuse a call whose method needs a right the caller has none of. */
export function authInterceptor(auth: Authenticator, onRefused: (code: Code) => void): Interceptor {
  return (next) => async (req) => {
    await admitCall(auth, onRefused, req.header, req.contextValues, req.service, req.method);
    return next(req);
  };
}

/** Why `principal` may not call `method` at all, or undefined when the door lets it in. */
export function doorProblem(principal: Principal, service: DescService, method: DescMethod): string | undefined {
  const rights = principal.rights;
  // Every AdminService method needs admin, including any added later.
  if (service.typeName === AdminService.typeName) return rights.admin ? undefined : `${principal.name} has no admin right`;
  const door = DOORS[`${service.typeName}/${method.name}`];
  if (door === undefined) return RUNNEL_SERVICES.has(service.typeName) ? `${service.typeName}/${method.name} has no access rule` : undefined;
  switch (door) {
    case "publish":
      return rights.publish.length > 0 ? undefined : `${principal.name} has no publish right`;
    case "subscribe":
      return rights.subscribe.length > 0 ? undefined : `${principal.name} has no subscribe right`;
    case "tail":
      return rights.tail.length > 0 ? undefined : `${principal.name} has no tail right`;
    case "admin":
      return rights.admin ? undefined : `${principal.name} has no admin right`;
    case "authenticated":
      return undefined;
  }
}

/**
 * Authenticate one call and put its Principal into the call's context values.
 * The interceptor runs it for every call connect-es routes; the lean Subscribe
 * path (which connect-es's interceptors never see) runs it itself.
 */
export async function admitCall(
  auth: Authenticator,
  onRefused: (code: Code) => void,
  header: Headers,
  values: ContextValues,
  service: DescService,
  method: DescMethod,
): Promise<void> {
  let principal: Principal;
  try {
    principal = await auth.authenticate(header.get("authorization") ?? undefined);
  } catch (e) {
    onRefused(Code.Unauthenticated);
    if (e instanceof TokenRefused) throw new ConnectError(e.message, Code.Unauthenticated);
    throw e;
  }
  const problem = doorProblem(principal, service, method);
  if (problem !== undefined) {
    onRefused(Code.PermissionDenied);
    throw new ConnectError(problem, Code.PermissionDenied);
  }
  values.set(principalKey, principal);
  values.set(deniedKey, onRefused);
}

/** The caller of a request. */
export function principalOf(ctx: HandlerContext): Principal {
  return ctx.values.get(principalKey);
}

/** PermissionDenied unless the caller may publish to `topic`. */
export function requirePublish(ctx: HandlerContext, topic: string): Principal {
  const p = principalOf(ctx);
  if (!mayPublish(p.rights, topic)) deny(ctx, `${p.name} may not publish to "${topic}"`);
  return p;
}

/** PermissionDenied unless every topic `pattern` could match is inside the caller's subscribe rights. */
export function requireSubscribe(ctx: HandlerContext, pattern: string): Principal {
  const p = principalOf(ctx);
  if (!maySubscribe(p.rights, pattern)) deny(ctx, `${p.name} may not subscribe to "${pattern}" (it must lie within one of its subscribe rights)`);
  return p;
}

/** PermissionDenied unless the caller may tail `path` (for TailService.Tail; ListFiles should list only such paths). */
export function requireTail(ctx: HandlerContext, path: string): Principal {
  const p = principalOf(ctx);
  if (!mayTail(p.rights, path)) deny(ctx, `${p.name} may not tail "${path}"`);
  return p;
}

function deny(ctx: HandlerContext, message: string): never {
  ctx.values.get(deniedKey)(Code.PermissionDenied);
  throw new ConnectError(message, Code.PermissionDenied);
}
