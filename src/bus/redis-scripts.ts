/**
 * The Redis side of the Redis bus: key names and the Lua scripts that make
 * a publish atomic. One script assigns the topic's next seq (HINCRBY), the
 * firehose position (INCR) and the stream id (XADD to the firehose), then
 * appends the same id to the topic's own stream and trims both; for a batch
 * it does so for each event in turn, within the same script. Because all of
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

// Publishes one or more events, in order, in one script (so nothing else runs between them).
// KEYS: epoch, seqs, count, firehose, trimmed, then the topic stream of each event.
// ARGV: epoch candidate, topic MAXLEN (0 none), topic max age ms (0 none), firehose MAXLEN,
//       then topic, data, headers JSON of each event.
// Returns { epoch, id 1, seq 1, id 2, seq 2, ... }.
const PUBLISH = `
local epoch = redis.call('GET', KEYS[1])
if not epoch then
  epoch = ARGV[1]
  redis.call('SET', KEYS[1], epoch)
end
local maxlen = tonumber(ARGV[2])
local maxAge = tonumber(ARGV[3])
local minid = nil
if maxAge > 0 then
  local t = redis.call('TIME')
  local nowMs = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  minid = string.format('%d-0', nowMs - maxAge)
end
local out = { epoch }
for i = 1, #KEYS - 5 do
  local key = KEYS[5 + i]
  local a = 4 + (i - 1) * 3
  local topic, data, headers = ARGV[a + 1], ARGV[a + 2], ARGV[a + 3]
  local seq = redis.call('HINCRBY', KEYS[2], topic, 1)
  local n = redis.call('INCR', KEYS[3])
  local id = redis.call('XADD', KEYS[4], 'MAXLEN', '~', ARGV[4], '*', 't', topic, 's', seq, 'd', data, 'h', headers, 'n', n)
  if maxlen > 0 then
    local len = redis.call('XLEN', key)
    if len >= maxlen then
      local gone = redis.call('XRANGE', key, '-', '+', 'COUNT', len - maxlen + 1)
      redis.call('HSET', KEYS[5], topic, gone[#gone][1])
    end
    redis.call('XADD', key, 'MAXLEN', maxlen, id, 's', seq, 'd', data, 'h', headers)
  else
    redis.call('XADD', key, id, 's', seq, 'd', data, 'h', headers)
  end
  if minid then
    local gone = redis.call('XREVRANGE', key, '(' .. minid, '-', 'COUNT', 1)
    if #gone > 0 then
      redis.call('HSET', KEYS[5], topic, gone[1][1])
      redis.call('XTRIM', key, 'MINID', minid)
    end
  end
  out[#out + 1] = id
  out[#out + 1] = seq
end
return out
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
  /** PUBLISH: the number of keys first, then the keys and arguments it lists. */
  runnelPublish(numberOfKeys: number, ...keysAndArgs: Array<string | number | Buffer>): Promise<Array<string | number>>;
  runnelSnapshot(epoch: string, count: string, firehose: string): Promise<[string | null, string, number]>;
}

/** Defines the scripts on `redis` and returns it typed with them. */
export function withScripts(redis: Redis): ScriptedRedis {
  redis.defineCommand("runnelPublish", { lua: PUBLISH }); // the number of keys varies: callers pass it first
  redis.defineCommand("runnelSnapshot", { numberOfKeys: 3, lua: SNAPSHOT, readOnly: true });
  // defineCommand adds the methods at run time; this is the type that says so.
  return redis as ScriptedRedis;
}
