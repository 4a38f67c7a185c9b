/**
 * An --auth file for tests: bearer tokens with distinct rights, a JWKS with
 * an RSA, an EC and an HMAC key, and a way to mint JWTs (good, expired,
 * wrongly signed) for each algorithm.
 */
import { exportJWK, generateKeyPair, SignJWT, type JWK } from "jose";
import { randomBytes } from "node:crypto";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { hashToken } from "../../src/auth/auth-file.js";

/** The tokens of the fixture, by role. */
export const TOKENS = {
  writer: "tok-writer-" + randomBytes(8).toString("hex"),
  euReader: "tok-eu-reader-" + randomBytes(8).toString("hex"),
  admin: "tok-admin-" + randomBytes(8).toString("hex"),
  tailer: "tok-tailer-" + randomBytes(8).toString("hex"),
} as const;

export const ISSUER = "https://idp.test";
export const AUDIENCE = "runnel";

/** Claims a test JWT may carry. */
export interface RunnelClaims {
  sub?: string;
  runnel_publish?: unknown;
  runnel_subscribe?: unknown;
  runnel_tail?: unknown;
  runnel_admin?: unknown;
}

type SigningKey = Parameters<SignJWT["sign"]>[0];

/** A written auth fixture. */
export interface AuthFixture {
  /** Path of the auth file, for `--auth` / Config.auth. */
  readonly path: string;
  /** Sign a JWT with one of the fixture's keys (or a stranger key with `foreign`). */
  jwt(alg: "RS256" | "ES256" | "HS256", claims: RunnelClaims, options?: { expiresIn?: string; foreign?: boolean; audience?: string }): Promise<string>;
}

/** Write an auth file and its JWKS to a fresh temp directory. */
export async function writeAuthFixture(): Promise<AuthFixture> {
  const dir = mkdtempSync(join(tmpdir(), "runnel-auth-"));
  const rsa = await generateKeyPair("RS256");
  const ec = await generateKeyPair("ES256");
  const secret = randomBytes(32);
  const keys: JWK[] = [
    { ...(await exportJWK(rsa.publicKey)), kid: "rsa-1", alg: "RS256", use: "sig" },
    { ...(await exportJWK(ec.publicKey)), kid: "ec-1", alg: "ES256", use: "sig" },
    { kty: "oct", k: secret.toString("base64url"), kid: "hs-1", alg: "HS256" },
  ];
  writeFileSync(join(dir, "jwks.json"), JSON.stringify({ keys }));
  const auth = {
    tokens: [
      { name: "writer", sha256: hashToken(TOKENS.writer), publish: ["orders.>"] },
      { name: "eu-reader", sha256: hashToken(TOKENS.euReader), subscribe: ["orders.eu.*"] },
      { name: "admin", sha256: hashToken(TOKENS.admin), admin: true, subscribe: [">"], publish: [">"] },
      { name: "tailer", sha256: hashToken(TOKENS.tailer), tail: ["app/*.log"] },
    ],
    jwt: { jwks: "jwks.json", issuer: ISSUER, audience: AUDIENCE },
  };
  const path = join(dir, "auth.json");
  writeFileSync(path, JSON.stringify(auth, null, 2));
  const strangers = { RS256: await generateKeyPair("RS256"), ES256: await generateKeyPair("ES256"), HS256: randomBytes(32) };
  return {
    path,
    async jwt(alg, claims, options = {}) {
      const kid = { RS256: "rsa-1", ES256: "ec-1", HS256: "hs-1" }[alg];
      let key: SigningKey;
      if (alg === "HS256") key = options.foreign ? strangers.HS256 : secret;
      else key = options.foreign ? strangers[alg].privateKey : (alg === "RS256" ? rsa : ec).privateKey;
      return new SignJWT({ ...claims } as Record<string, unknown>)
        .setProtectedHeader({ alg, kid })
        .setIssuer(ISSUER)
        .setAudience(options.audience ?? AUDIENCE)
        .setIssuedAt()
        .setExpirationTime(options.expiresIn ?? "5m")
        .sign(key);
    },
  };
}
