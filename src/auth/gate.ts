/**
 * The server's door, built once from `--auth`: the authenticator, the
 * Connect interceptor, `runnel_auth_refused_total{code}`, and the decision
 * for /metrics (which shows topic names and peers: admin only when auth is
 * on). /healthz is always open: it says only "ok" or "shutting down".
 */
import { Code, type HandlerContext, type Interceptor } from "@connectrpc/connect";
import { Counter, type Registry } from "prom-client";
import { loadAuthFile } from "./auth-file.js";
import { createAuthenticator, OPEN_DOOR, type Authenticator } from "./authenticator.js";
import { admitCall, authInterceptor } from "./access.js";

/** The door of one server. */
export interface Gate {
  readonly authenticator: Authenticator;
  readonly interceptor: Interceptor;
  /** What the interceptor does, for a call connect-es's interceptors do not see (the lean Subscribe path). */
  admit(ctx: HandlerContext): Promise<void>;
  /** HTTP status for a /metrics request with this Authorization header: 200, 401 or 403. */
  scrapeStatus(authorization: string | undefined): Promise<200 | 401 | 403>;
}

/** Build the gate: auth from `authFile`, or an open door when undefined. */
export function createGate(authFile: string | undefined, registry: Registry): Gate {
  const authenticator = authFile !== undefined ? createAuthenticator(loadAuthFile(authFile)) : OPEN_DOOR;
  const refused = new Counter({
    name: "runnel_auth_refused_total",
    help: "Calls refused by auth, by code (unauthenticated, permission_denied)",
    labelNames: ["code"],
    registers: [registry],
  });
  refused.inc({ code: "unauthenticated" }, 0);
  refused.inc({ code: "permission_denied" }, 0);
  const count = (code: Code): void => refused.inc({ code: code === Code.Unauthenticated ? "unauthenticated" : "permission_denied" });
  return {
    authenticator,
    interceptor: authInterceptor(authenticator, count),
    admit: (ctx) => admitCall(authenticator, count, ctx.requestHeader, ctx.values, ctx.service, ctx.method),
    async scrapeStatus(authorization) {
      if (!authenticator.enabled) return 200;
      try {
        const principal = await authenticator.authenticate(authorization);
        if (principal.rights.admin) return 200;
        count(Code.PermissionDenied);
        return 403;
      } catch {
        count(Code.Unauthenticated);
        return 401;
      }
    },
  };
}
