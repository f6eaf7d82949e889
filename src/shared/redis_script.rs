//! The Lua scripts replicas run on Redis: each change and its announcement in one atomic step,
//! so two replicas deciding at once cannot undo each other.

/// Rests a key until `ARGV[1]` (wall-clock ms) unless it already rests longer: the later
/// deadline wins. Announces the change. `KEYS[1]`: the key's hash; `KEYS[2]`: the channel.
/// `ARGV`: until, state (`cooling` or `invalid`), the announcement. Returns 1 if it changed.
pub const REST: &str = r"
local current = tonumber(redis.call('HGET', KEYS[1], 'until') or '0')
local deadline = tonumber(ARGV[1])
if deadline <= current then
  return 0
end
redis.call('HSET', KEYS[1], 'until', ARGV[1], 'state', ARGV[2])
redis.call('PEXPIREAT', KEYS[1], deadline)
redis.call('PUBLISH', KEYS[2], ARGV[3])
return 1
";

/// Moves the sticky key from `ARGV[1]` to `ARGV[2]` only if it is still at `ARGV[1]` (or not
/// set): N replicas seeing the same failure move it once. Announces the change. Returns the
/// sticky key after the call.
pub const MOVE_CURRENT: &str = r"
local current = redis.call('GET', KEYS[1])
if current and current ~= ARGV[1] then
  return current
end
redis.call('SET', KEYS[1], ARGV[2])
redis.call('PUBLISH', KEYS[2], ARGV[3])
return ARGV[2]
";

/// Lifts every rejection among the keys named in `KEYS[2..]`, and announces it.
/// `KEYS[1]`: the channel; `ARGV[1]`: the announcement.
pub const CLEAR_REJECTIONS: &str = r"
for i = 2, #KEYS do
  if redis.call('HGET', KEYS[i], 'state') == 'invalid' then
    redis.call('DEL', KEYS[i])
  end
end
redis.call('PUBLISH', KEYS[1], ARGV[1])
return 1
";

/// One replica's heartbeat among those sharing client limits: `KEYS[1]` is a hash of replica →
/// the second it was last heard of, `ARGV[1]` this replica. Returns how many were heard of in
/// the last 5 seconds (those not heard of longer leave).
pub const LIMIT_REPLICAS: &str = r"
local now = tonumber(redis.call('TIME')[1])
redis.call('HSET', KEYS[1], ARGV[1], now)
local all = redis.call('HGETALL', KEYS[1])
local replicas = 0
for i = 1, #all, 2 do
  if tonumber(all[i + 1]) < now - 5 then
    redis.call('HDEL', KEYS[1], all[i])
  else
    replicas = replicas + 1
  end
end
redis.call('EXPIRE', KEYS[1], 60)
return replicas
";

/// One client key's counters, pushed by one replica and summed over the others, in one step.
/// `KEYS[1]`: the key's hash, with fields `r|second|replica` (requests) and `t|second|replica`
/// (tokens) for each second of the last 62 (a minute, counted whole with a second to spare
/// for the replicas' windows), and `p|replica` (requests in flight, with the second it was
/// said; a replica not heard of for 5 seconds counts for nothing). `ARGV`: the replica, its
/// requests and tokens since its last push, its requests in flight now. Returns the other
/// replicas' requests, tokens and requests in flight.
pub const PUSH_LIMITS: &str = r"
local now = tonumber(redis.call('TIME')[1])
local me = ARGV[1]
local requests, tokens = tonumber(ARGV[2]), tonumber(ARGV[3])
if requests ~= 0 then redis.call('HINCRBY', KEYS[1], 'r|' .. now .. '|' .. me, requests) end
if tokens ~= 0 then redis.call('HINCRBY', KEYS[1], 't|' .. now .. '|' .. me, tokens) end
redis.call('HSET', KEYS[1], 'p|' .. me, ARGV[4] .. '|' .. now)
local fields = redis.call('HGETALL', KEYS[1])
local r, t, p = 0, 0, 0
for i = 1, #fields, 2 do
  local name, value = fields[i], fields[i + 1]
  local kind, first, second = string.match(name, '^(%a)|([^|]*)|?(.*)$')
  if kind == 'p' then
    local level, seen = string.match(value, '^(-?%d+)|(%d+)$')
    if tonumber(seen) < now - 5 then
      redis.call('HDEL', KEYS[1], name)
    elseif first ~= me then
      p = p + tonumber(level)
    end
  elseif kind == 'r' or kind == 't' then
    if tonumber(first) <= now - 62 then
      redis.call('HDEL', KEYS[1], name)
    elseif second ~= me then
      if kind == 'r' then r = r + tonumber(value) else t = t + tonumber(value) end
    end
  end
end
redis.call('EXPIRE', KEYS[1], 120)
return {r, t, p}
";
