/**
 * Topic names and subscription patterns: tokens split by ".", where a
 * pattern may use "*" (exactly one token) and ">" (one or more trailing
 * tokens, last position only). Validation lives here so every bus and every
 * service agree on what a valid topic is.
 */

/** Longest topic or pattern accepted, in characters. */
export const MAX_TOPIC_LENGTH = 256;
/** Most tokens a topic or pattern may have. */
export const MAX_TOPIC_DEPTH = 16;

const TOKEN = /^[A-Za-z0-9_\-:@~+=]+$/;

/** Returns a human-readable problem with `topic` as a publish topic, or undefined when it is valid. */
export function topicProblem(topic: string): string | undefined {
  return check(topic, false);
}

/** Returns a human-readable problem with `pattern` as a subscription pattern, or undefined when it is valid. */
export function patternProblem(pattern: string): string | undefined {
  return check(pattern, true);
}

/** True when the pattern contains a wildcard token. */
export function isPattern(pattern: string): boolean {
  return pattern.split(".").some((t) => t === "*" || t === ">");
}

/** Whether an exact topic matches a (valid) pattern. */
export function matches(pattern: string, topic: string): boolean {
  const p = pattern.split(".");
  const t = topic.split(".");
  for (let i = 0; i < p.length; i++) {
    if (p[i] === ">") return t.length > i;
    if (i >= t.length) return false;
    if (p[i] !== "*" && p[i] !== t[i]) return false;
  }
  return p.length === t.length;
}

function check(value: string, allowWildcards: boolean): string | undefined {
  const what = allowWildcards ? "pattern" : "topic";
  if (value.length === 0) return `${what} is empty`;
  if (value.length > MAX_TOPIC_LENGTH) return `${what} is longer than ${MAX_TOPIC_LENGTH} characters`;
  const tokens = value.split(".");
  if (tokens.length > MAX_TOPIC_DEPTH) return `${what} has more than ${MAX_TOPIC_DEPTH} tokens`;
  for (let i = 0; i < tokens.length; i++) {
    const token = tokens[i]!;
    if (token === "") return `${what} "${value}" has an empty token (leading, trailing or double ".")`;
    if (token === "*" || token === ">") {
      if (!allowWildcards) return `topic "${value}" contains wildcard "${token}"; publish needs an exact topic`;
      if (token === ">" && i !== tokens.length - 1) return `pattern "${value}": ">" may only be the last token`;
      continue;
    }
    if (!TOKEN.test(token)) {
      return `${what} "${value}": token "${token}" may only contain letters, digits and _ - : @ ~ + =`;
    }
  }
  return undefined;
}
