/**
 * The one place requests are let in: a Connect interceptor authenticates
 * every call and puts its Principal in the context values; services ask
 * `requirePublish` / `requireSubscribe` / `requireTail` for the one thing
 * each request touches; AdminService needs `admin` for every method, decided
 * here by service name.
 */
import type { DescService } from "@bufbuild/protobuf";
import { Code, ConnectError, createContextKey, type ContextValues, type HandlerContext, type Interceptor } from "@connectrpc/connect";
import { AdminService } from "../../gen/runnel/v1/admin_pb.js";
import type { Authenticator } from "./authenticator.js";
import { TokenRefused } from "./jwt.js";
import { ANONYMOUS, mayPublish, maySubscribe, mayTail, type Principal } from "./rights.js";

/** Context key of the caller; ANONYMOUS (every right) when auth is off or the interceptor is not installed. */
export const principalKey = createContextKey<Principal>(ANONYMOUS, { description: "runnel principal" });

/** Where a service reports a PermissionDenied it decided (the metric); a no-op unless the interceptor set it. */
const deniedKey = createContextKey<(code: Code) => void>(() => undefined, { description: "runnel auth refusal counter" });

/** Authenticate every call; refuse AdminService to non-admins. */
export function authInterceptor(auth: Authenticator, onRefused: (code: Code) => void): Interceptor {
  return (next) => async (req) => {
    await admitCall(auth, onRefused, req.header, req.contextValues, req.service);
    return next(req);
  };
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
): Promise<void> {
  let principal: Principal;
  try {
    principal = await auth.authenticate(header.get("authorization") ?? undefined);
  } catch (e) {
    onRefused(Code.Unauthenticated);
    if (e instanceof TokenRefused) throw new ConnectError(e.message, Code.Unauthenticated);
    throw e;
  }
  if (service.typeName === AdminService.typeName && !principal.rights.admin) {
    onRefused(Code.PermissionDenied);
    throw new ConnectError(`${principal.name} has no admin right`, Code.PermissionDenied);
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
