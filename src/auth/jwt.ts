/**
 * JWT bearer tokens verified with `jose` against a JWKS file: RS256 and ES256
 * with public keys, HS256 with `oct` keys (jose's local JWKS takes only
 * public keys, so those are looked up here). The rights travel in claims:
 *
 *   sub               the caller's name (limits count per name)
 *   runnel_publish    topic patterns it may publish to
 *   runnel_subscribe  topic patterns it may subscribe within
 *   runnel_tail       tail path patterns
 *   runnel_admin      true for AdminService and /metrics
 *
 * `exp` and `nbf` are enforced; `iss` and `aud` when the auth file names them.
 */
import { readFileSync } from "node:fs";
import {
  createLocalJWKSet,
  errors,
  importJWK,
  jwtVerify,
  type JSONWebKeySet,
  type JWK,
  type JWTHeaderParameters,
  type JWTVerifyGetKey,
} from "jose";
import { ConfigError } from "../config.js";
import { rightsFrom, type JwtSettings } from "./auth-file.js";
import type { Principal } from "./rights.js";

/** The algorithms runnel accepts; anything else (`none` among them) is refused. */
export const JWT_ALGORITHMS = ["RS256", "ES256", "HS256"] as const;

/** Why a token was refused, for the Unauthenticated message. */
export class TokenRefused extends Error {
  override name = "TokenRefused";
}

/** Verifies JWTs and turns their claims into a Principal. */
export type JwtVerifier = (token: string) => Promise<Principal>;

/** Build a verifier from the auth file's jwt section (reads the JWKS file now). */
export function createJwtVerifier(settings: JwtSettings): JwtVerifier {
  let jwks: JSONWebKeySet;
  try {
    jwks = JSON.parse(readFileSync(settings.jwksPath, "utf8")) as JSONWebKeySet;
  } catch (e) {
    throw new ConfigError(`jwt.jwks ${settings.jwksPath}: ${(e as Error).message}`);
  }
  if (!Array.isArray(jwks.keys) || jwks.keys.length === 0) throw new ConfigError(`jwt.jwks ${settings.jwksPath}: no "keys"`);
  const secrets = jwks.keys.filter((k) => k.kty === "oct");
  const publicSet = createLocalJWKSet({ keys: jwks.keys.filter((k) => k.kty !== "oct") });
  const getKey: JWTVerifyGetKey = async (header: JWTHeaderParameters, token) => {
    if (header.alg !== "HS256") return publicSet(header, token);
    const candidates = secrets.filter((k: JWK) => (header.kid === undefined || k.kid === header.kid) && (k.alg === undefined || k.alg === "HS256"));
    if (candidates.length !== 1) throw new errors.JWKSNoMatchingKey();
    return importJWK(candidates[0]!, "HS256");
  };
  return async (token) => {
    let payload: Record<string, unknown>;
    try {
      ({ payload } = await jwtVerify(token, getKey, {
        algorithms: [...JWT_ALGORITHMS],
        ...(settings.issuer !== undefined ? { issuer: settings.issuer } : {}),
        ...(settings.audience !== undefined ? { audience: settings.audience } : {}),
      }));
    } catch (e) {
      throw new TokenRefused(`JWT refused: ${e instanceof errors.JOSEError ? e.code : "malformed"}`);
    }
    if (typeof payload.sub !== "string" || payload.sub === "") throw new TokenRefused("JWT refused: no sub claim");
    const rights = rightsFrom(
      payload,
      (what) => {
        throw new TokenRefused(`JWT refused: claim ${what}`);
      },
      "runnel_",
    );
    return { name: `jwt:${payload.sub}`, rights };
  };
}
