/**
 * The Redis side of the Redis bus: key names and the Lua scripts that make
 * a publish atomic. One script assigns the topic's next seq (HINCRBY), the
 * firehose position (INCR) and the stream id (XADD to the firehose), then
 * appends the same id to the topic's own stream and trims both. Because all of
 * it runs as one script, seqs are gapless per topic whichever node publishes,
 * and the firehose order is the one order every node fans out in.
 */
import type { Redis } from "ioredis";

/** The keys of one runnel dataset under a prefix (default "runnel:"). */
export interface RedisKeys {
  /** String: random id of the dataset, written into every cursor. */
  readonly epoch: string;
  /** Hash: topic -> last seq. Also the list of topics for pattern replay. */
  readonly seqs: string;
  /** String counter: number of events ever published (firehose continuity check). */
  readonly count: string;
  /** Stream: every event of every topic, in publish order; what each node's reader follows. */
  readonly firehose: string;
  /** Hash: topic -> id of the newest event trimmed from it (Redis keeps no trace of trimmed entries). */
  readonly trimmed: string;
  /** Stream of one topic: its retained history. */
  topic(topic: string): string;
}

/** Key names under `prefix`. */
export function redisKeys(prefix: string): RedisKeys {
  return {
    epoch: `${prefix}epoch`,
    seqs: `${prefix}seqs`,
    count: `${prefix}count`,
    firehose: `${prefix}firehose`,
    trimmed: `${prefix}trimmed`,
    topic: (topic) => `${prefix}t:${topic}`,
  };
}

// KEYS: epoch, seqs, count, firehose, topic stream, trimmed.
// ARGV: epoch candidate, topic, data, headers JSON, topic MAXLEN (0 none), topic max age ms (0 none), firehose MAXLEN.
// Returns { id, seq, epoch }.
const PUBLISH = `
local epoch = redis.call('GET', KEYS[1])
if not epoch then
  epoch = ARGV[1]
  redis.call('SET', KEYS[1], epoch)
end
local seq = redis.call('HINCRBY', KEYS[2], ARGV[2], 1)
local n = redis.call('INCR', KEYS[3])
local id = redis.call('XADD', KEYS[4], 'MAXLEN', '~', ARGV[7], '*', 't', ARGV[2], 's', seq, 'd', ARGV[3], 'h', ARGV[4], 'n', n)
local maxlen = tonumber(ARGV[5])
if maxlen > 0 then
  local len = redis.call('XLEN', KEYS[5])
  if len >= maxlen then
    local gone = redis.call('XRANGE', KEYS[5], '-', '+', 'COUNT', len - maxlen + 1)
    redis.call('HSET', KEYS[6], ARGV[2], gone[#gone][1])
  end
  redis.call('XADD', KEYS[5], 'MAXLEN', maxlen, id, 's', seq, 'd', ARGV[3], 'h', ARGV[4])
else
  redis.call('XADD', KEYS[5], id, 's', seq, 'd', ARGV[3], 'h', ARGV[4])
end
local maxAge = tonumber(ARGV[6])
if maxAge > 0 then
  local t = redis.call('TIME')
  local nowMs = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  local minid = string.format('%d-0', nowMs - maxAge)
  local gone = redis.call('XREVRANGE', KEYS[5], '(' .. minid, '-', 'COUNT', 1)
  if #gone > 0 then
    redis.call('HSET', KEYS[6], ARGV[2], gone[1][1])
    redis.call('XTRIM', KEYS[5], 'MINID', minid)
  end
end
return { id, seq, epoch }
`;

// KEYS: epoch, count, firehose. Returns { epoch or false, last firehose id ("0-0" when none), events ever published }.
const SNAPSHOT = `
local epoch = redis.call('GET', KEYS[1])
local n = tonumber(redis.call('GET', KEYS[2]) or '0')
local last = '0-0'
if redis.call('EXISTS', KEYS[3]) == 1 then
  local info = redis.call('XINFO', 'STREAM', KEYS[3])
  for i = 1, #info, 2 do
    if info[i] == 'last-generated-id' then last = info[i + 1] end
  end
end
return { epoch, last, n }
`;

/** A Redis connection with runnel's scripts defined (run with EVALSHA, loaded on first use). */
export interface ScriptedRedis extends Redis {
  runnelPublish(
    epoch: string, seqs: string, count: string, firehose: string, topicKey: string, trimmed: string,
    candidate: string, topic: string, data: Uint8Array, headers: string, maxlen: number, maxAgeMs: number, firehoseMaxlen: number,
  ): Promise<[string, number, string]>;
  runnelSnapshot(epoch: string, count: string, firehose: string): Promise<[string | null, string, number]>;
}

/** Defines the scripts on `redis` and returns it typed with them. */
export function withScripts(redis: Redis): ScriptedRedis {
  redis.defineCommand("runnelPublish", { numberOfKeys: 6, lua: PUBLISH });
  redis.defineCommand("runnelSnapshot", { numberOfKeys: 3, lua: SNAPSHOT, readOnly: true });
  // defineCommand adds the methods at run time; this is the type that says so.
  return redis as ScriptedRedis;
}
