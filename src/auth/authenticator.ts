/**
 * Who is calling: the `authorization: Bearer ...` header turned into a
 * Principal, or a refusal. One object per server; the Connect interceptor
 * and the /metrics route both ask it.
 */
import { hashToken, type AuthFile } from "./auth-file.js";
import { createJwtVerifier, TokenRefused, type JwtVerifier } from "./jwt.js";
import { ANONYMOUS, type Principal } from "./rights.js";

/** Authenticates requests. */
export interface Authenticator {
  /** False when auth is off (every caller is ANONYMOUS with every right). */
  readonly enabled: boolean;
  /** The caller behind an Authorization header value; throws TokenRefused when there is none or it is not valid. */
  authenticate(authorization: string | null | undefined): Promise<Principal>;
}

/** The authenticator when `--auth` is not given. */
export const OPEN_DOOR: Authenticator = {
  enabled: false,
  authenticate: () => Promise.resolve(ANONYMOUS),
};

/** Longest bearer credential looked at (a JWT with many rights fits; megabytes of junk do not get parsed). */
const MAX_CREDENTIAL_CHARS = 8 * 1024;

/** Build the authenticator for an auth file. */
export function createAuthenticator(file: AuthFile): Authenticator {
  const byHash = new Map<string, Principal>();
  for (const t of file.tokens) byHash.set(t.sha256, { name: `token:${t.name}`, rights: t.rights });
  const verifyJwt: JwtVerifier | undefined = file.jwt !== undefined ? createJwtVerifier(file.jwt) : undefined;
  return {
    enabled: true,
    async authenticate(authorization) {
      if (authorization === null || authorization === undefined || authorization === "") {
        throw new TokenRefused("missing bearer token (send \"authorization: Bearer TOKEN\")");
      }
      const match = /^Bearer +(\S+) *$/i.exec(authorization);
      if (match === null) throw new TokenRefused("authorization must be \"Bearer TOKEN\"");
      const credential = match[1]!;
      if (credential.length > MAX_CREDENTIAL_CHARS) throw new TokenRefused("bearer token is too long");
      // A map keyed by the SHA-256 of the token: lookup time says nothing about the stored tokens.
      const known = byHash.get(hashToken(credential));
      if (known !== undefined) return known;
      if (verifyJwt !== undefined && credential.split(".").length === 3) return verifyJwt(credential);
      throw new TokenRefused("unknown bearer token");
    },
  };
}
