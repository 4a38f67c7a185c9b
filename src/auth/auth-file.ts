/**
 * The `--auth FILE`: bearer tokens stored as SHA-256 hashes (never the tokens
 * themselves) with their rights, and optionally where JWTs are verified from.
 * Read and checked once at start; a mistake in it is a ConfigError naming
 * the entry.
 *
 * {
 *   "tokens": [
 *     { "name": "orders-app", "sha256": "<64 hex>", "publish": ["orders.>"],
 *       "subscribe": ["orders.eu.*"], "tail": ["app/*.log"], "admin": false }
 *   ],
 *   "jwt": { "jwks": "jwks.json", "issuer": "https://idp.example", "audience": "runnel" }
 * }
 */
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { patternProblem } from "../bus/topic.js";
import { ConfigError } from "../config.js";
import type { Rights } from "./rights.js";

/** One bearer token of the auth file. */
export interface TokenEntry {
  readonly name: string;
  /** Lower-case hex SHA-256 of the token. */
  readonly sha256: string;
  readonly rights: Rights;
}

/** Where and how JWTs are verified. */
export interface JwtSettings {
  /** Absolute path of the JWKS file (public keys; `oct` keys for HS256). */
  readonly jwksPath: string;
  readonly issuer: string | undefined;
  readonly audience: string | undefined;
}

/** The parsed auth file. */
export interface AuthFile {
  readonly tokens: readonly TokenEntry[];
  readonly jwt: JwtSettings | undefined;
}

/** SHA-256 hex of a bearer token: what the auth file stores. */
export function hashToken(token: string): string {
  return createHash("sha256").update(token, "utf8").digest("hex");
}

/** Read and validate an auth file. */
export function loadAuthFile(path: string): AuthFile {
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(path, "utf8"));
  } catch (e) {
    throw new ConfigError(`--auth ${path}: ${(e as Error).message}`);
  }
  return parseAuthFile(raw, path);
}

/** Validate the JSON of an auth file (paths inside it are relative to `path`'s directory). */
export function parseAuthFile(raw: unknown, path: string): AuthFile {
  const fail = (what: string): never => {
    throw new ConfigError(`--auth ${path}: ${what}`);
  };
  if (!isObject(raw)) return fail("must be a JSON object with \"tokens\" and/or \"jwt\"");
  const tokensRaw = raw.tokens ?? [];
  if (!Array.isArray(tokensRaw)) return fail("\"tokens\" must be an array");
  const names = new Set<string>();
  const hashes = new Set<string>();
  const tokens = tokensRaw.map((t: unknown, i): TokenEntry => {
    if (!isObject(t)) return fail(`tokens[${i}] must be an object`);
    const name = t.name;
    if (typeof name !== "string" || name === "") return fail(`tokens[${i}].name must be a non-empty string`);
    if (names.has(name)) return fail(`tokens[${i}]: name "${name}" appears twice`);
    names.add(name);
    const sha256 = t.sha256;
    if (typeof sha256 !== "string" || !/^[0-9a-fA-F]{64}$/.test(sha256)) {
      return fail(`token "${name}": sha256 must be 64 hex digits (the SHA-256 of the token, e.g. from "runnel hash-token")`);
    }
    if (hashes.has(sha256.toLowerCase())) return fail(`token "${name}": the same hash appears twice`);
    hashes.add(sha256.toLowerCase());
    const rights = rightsFrom(t, (what) => fail(`token "${name}": ${what}`));
    return { name, sha256: sha256.toLowerCase(), rights };
  });
  let jwt: JwtSettings | undefined;
  if (raw.jwt !== undefined) {
    const j = raw.jwt;
    if (!isObject(j) || typeof j.jwks !== "string") return fail("\"jwt\" must be an object with \"jwks\" (a file path)");
    for (const key of ["issuer", "audience"] as const) {
      if (j[key] !== undefined && typeof j[key] !== "string") fail(`jwt.${key} must be a string`);
    }
    jwt = {
      jwksPath: resolve(dirname(path), j.jwks),
      issuer: j.issuer as string | undefined,
      audience: j.audience as string | undefined,
    };
  }
  if (tokens.length === 0 && jwt === undefined) return fail("has no tokens and no jwt section: nobody could get in");
  return { tokens, jwt };
}

/**
 * Rights from an object with `publish`, `subscribe`, `tail` (string arrays)
 * and `admin` (boolean); used for auth-file entries and for JWT claims.
 */
export function rightsFrom(source: Record<string, unknown>, fail: (what: string) => never, prefix = ""): Rights {
  const list = (key: string): string[] => {
    const v = source[prefix + key];
    if (v === undefined) return [];
    if (!Array.isArray(v) || !v.every((x) => typeof x === "string")) return fail(`"${prefix + key}" must be an array of strings`);
    return v as string[];
  };
  const publish = list("publish");
  const subscribe = list("subscribe");
  for (const p of [...publish, ...subscribe]) {
    const problem = patternProblem(p);
    if (problem !== undefined) fail(`right "${p}": ${problem}`);
  }
  const tail = list("tail");
  for (const t of tail) if (t === "" || t.startsWith("/") || t.split("/").includes("..")) fail(`tail right "${t}" must be a relative path pattern`);
  const admin = source[prefix + "admin"] ?? false;
  if (typeof admin !== "boolean") return fail(`"${prefix}admin" must be true or false`);
  return { publish, subscribe, tail, admin };
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}
