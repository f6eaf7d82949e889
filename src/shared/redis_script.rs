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
