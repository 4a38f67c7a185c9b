/**
 * What a caller may do, and the checks that decide it. A right is a pattern:
 * topics for publish and subscribe (the bus's own `*` and `>` syntax), paths
 * for tail (`*` within one path segment, `**` across segments). A
 * subscription pattern is admitted only when every topic it could ever match
 * is admitted: containment, not overlap.
 */
import { matches } from "../bus/topic.js";

/** The rights of one caller. */
export interface Rights {
  /** Topic patterns the caller may publish to. */
  readonly publish: readonly string[];
  /** Topic patterns the caller may subscribe within. */
  readonly subscribe: readonly string[];
  /** Tail path patterns, relative to the served tail directories. */
  readonly tail: readonly string[];
  /** AdminService, /metrics. */
  readonly admin: boolean;
}

/** An authenticated caller: a stable name (limits count per name) and its rights. */
export interface Principal {
  /** "token:NAME", "jwt:SUB", or "anonymous" when auth is off. */
  readonly name: string;
  readonly rights: Rights;
}

/** The caller when auth is off: everything is allowed. */
export const ANONYMOUS: Principal = {
  name: "anonymous",
  rights: { publish: [">"], subscribe: [">"], tail: ["**"], admin: true },
};

/** Whether `right` (a pattern) admits publishing to the exact `topic`. */
export function mayPublish(rights: Rights, topic: string): boolean {
  return rights.publish.some((right) => matches(right, topic));
}

/** Whether every topic `pattern` can match is inside one of the subscribe rights. */
export function maySubscribe(rights: Rights, pattern: string): boolean {
  return rights.subscribe.some((right) => patternContains(right, pattern));
}

/** Whether the caller may tail `path` (relative, "/"-separated). A path that climbs (`..`) or is absolute is never admitted. */
export function mayTail(rights: Rights, path: string): boolean {
  const segments = path.split("/");
  if (path.startsWith("/") || segments.some((s) => s === ".." || s === "." || s === "")) return false;
  return rights.tail.some((right) => globMatches(right, path));
}

/**
 * True when every topic matched by `inner` is matched by `outer`. Token by
 * token: a literal is covered by the same literal or `*`; `*` only by `*`;
 * `>` only by `>`; and `outer` ending in `>` covers any non-empty rest.
 */
export function patternContains(outer: string, inner: string): boolean {
  const o = outer.split(".");
  const p = inner.split(".");
  for (let i = 0; i < p.length; i++) {
    if (i >= o.length) return false;
    const right = o[i]!;
    const asked = p[i]!;
    if (right === ">") return true; // `inner` has a token here, so each topic it matches has one or more left
    if (asked === ">") return false;
    if (asked === "*") {
      if (right !== "*") return false;
    } else if (right !== "*" && right !== asked) {
      return false;
    }
  }
  return o.length === p.length;
}

/** `*` matches within one segment, `**` any run of segments (including none). */
export function globMatches(glob: string, path: string): boolean {
  return globRegExp(glob).test(path);
}

const globCache = new Map<string, RegExp>();

function globRegExp(glob: string): RegExp {
  let re = globCache.get(glob);
  if (re === undefined) {
    const body = glob
      .split("/")
      .map((segment) => (segment === "**" ? "\u0000" : segment.split("*").map(escapeRegExp).join("[^/]*")))
      .join("/")
      .replaceAll("\u0000/", "(?:[^/]+/)*")
      .replaceAll("/\u0000", "(?:/[^/]+)*")
      .replaceAll("\u0000", ".*");
    re = new RegExp(`^${body}$`);
    if (globCache.size >= 1_000) globCache.clear(); // JWT claims bring globs from outside: keep the cache bounded
    globCache.set(glob, re);
  }
  return re;
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}
