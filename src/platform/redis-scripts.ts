/**
 * The Redis side of the shared platform store: two Lua scripts, run atomically by Redis. `APPLY`
 * applies one batch of writes (see `PlatformBatch` in store.ts) in order; `VIEW` reads every
 * figure back in one round trip. They keep what `MemoryStore` keeps, in these keys (all under a
 * prefix, `aiot:p:` by default):
 *
 * | key | type | what |
 * |---|---|---|
 * | `time` | string | latest event time (epoch ms) |
 * | `kinds`, `malformed`, `stats` | hash | messages by kind; malformed by reason; counters (malformed, duplicates, missing, accepted, tooOld, unknown, over5) |
 * | `online` | hash | did -> "category\tmodel\tregion\ttransport" of each device online |
 * | `by:category`, `by:model`, `by:region`, `by:transport` | hash | online devices per value |
 * | `since` | hash | did -> event time of its latest "online" (older last wills change nothing) |
 * | `sconn`, `strans` | hash | did -> its MQTT session's connection id and transport |
 * | `kids:{gw}` | set | the children a gateway announced |
 * | `seen`, `owners` | set, hash | devices ever seen online; uid -> how many of them it owns |
 * | `hi`, `lo`, `dd:{did}` | hash, hash, string | per device: highest and lowest event `seq` seen, and a 512-bit window of those below the highest (de-duplication) |
 * | `h:{window}:{day}` | HyperLogLog | distinct ids active that event-time day (PFADD, PFCOUNT; 0.81 % standard error) |
 * | `s:{window}:{day}`, `x:{window}:{day}` | set, string | the same ids exactly while at most 2,048 (then `x` marks the day as sketch-only) |
 * | `days:{window}`, `first`, `latest` | sorted set, hash, hash | the days a window holds (31 kept), its first and latest day |
 * | `hist`, `histz`, `histlast` | hash, sorted set, string | online count per event-time minute: "min,max,last" |
 * | `faults` | hash | fault records by writer and index (JSON) |
 * | `epoch` | string | set when the store is first used: a Redis that lost its data has none |
 *
 * Distinct counts are exact up to 2,048 ids (a union of days too), as in the in-memory store,
 * and from there Redis' HyperLogLog (PFCOUNT over several days is the union's estimate).
 */

/** Ids kept exactly per day (the in-memory counter's EXACT_LIMIT). */
export const EXACT_IDS = 2048;
/** Days a window keeps (the 30-day window and the current day). */
export const KEEP_DAYS = 31;
/** Buckets of the online history kept (two days of minutes, as in memory). */
export const HISTORY_BUCKETS = 2 * 24 * 60;
/** Buckets a view brings back (the latest six hours of event time). */
export const VIEW_BUCKETS = 360;

const COMMON = `
local P = ARGV[1]
local EXACT = ${EXACT_IDS}
local KEEP = ${KEEP_DAYS}
local WIN = 512
local call = redis.call
`;

export const APPLY = `${COMMON}
local i = 2
-- Arguments are read in order from T: ARGV first, then the batch's ops (one argument, fields ending in newlines).
local T = ARGV
local function nxt() local v = T[i]; i = i + 1; return v end
local function split(s)
  local out = {}
  for f in string.gmatch(s, '([^\\n]*)\\n') do out[#out + 1] = f end
  return out
end

local t = nxt()
if t ~= '' then
  local cur = tonumber(call('GET', P .. 'time'))
  if not cur or tonumber(t) > cur then call('SET', P .. 'time', t) end
end
local now = tonumber(call('GET', P .. 'time'))

for _ = 1, tonumber(nxt()) do
  local k = nxt(); call('HINCRBY', P .. 'kinds', k, tonumber(nxt()))
end
for _ = 1, tonumber(nxt()) do
  local reason = nxt(); local n = tonumber(nxt())
  if call('HEXISTS', P .. 'malformed', reason) == 0 and call('HLEN', P .. 'malformed') >= 200 then reason = 'other' end
  call('HINCRBY', P .. 'malformed', reason, n)
  call('HINCRBY', P .. 'stats', 'malformed', n)
end

local function chunked(cmd, key, ids)
  for s = 1, #ids, 1000 do
    call(cmd, key, unpack(ids, s, math.min(s + 999, #ids)))
  end
end

for _ = 1, tonumber(nxt()) do
  local w = nxt(); local day = tonumber(nxt())
  local ids = split(nxt())
  local latest = tonumber(call('HGET', P .. 'latest', w))
  if not (latest and day <= latest - KEEP) then
    if not latest or day > latest then
      call('HSET', P .. 'latest', w, day)
      for _, old in ipairs(call('ZRANGEBYSCORE', P .. 'days:' .. w, '-inf', day - KEEP)) do
        call('DEL', P .. 'h:' .. w .. ':' .. old, P .. 's:' .. w .. ':' .. old, P .. 'x:' .. w .. ':' .. old)
        call('ZREM', P .. 'days:' .. w, old)
      end
    end
    local first = tonumber(call('HGET', P .. 'first', w))
    if not first or day < first then call('HSET', P .. 'first', w, day) end
    call('ZADD', P .. 'days:' .. w, day, day)
    local suffix = w .. ':' .. day
    chunked('PFADD', P .. 'h:' .. suffix, ids)
    if call('EXISTS', P .. 'x:' .. suffix) == 0 then
      chunked('SADD', P .. 's:' .. suffix, ids)
      if call('SCARD', P .. 's:' .. suffix) > EXACT then
        call('DEL', P .. 's:' .. suffix)
        call('SET', P .. 'x:' .. suffix, '1')
      end
    end
  end
end

local DIMS = { 'category', 'model', 'region', 'transport' }
local function tally(fields, d)
  for k = 1, 4 do
    local key = P .. 'by:' .. DIMS[k]
    if call('HINCRBY', key, fields[k], d) <= 0 then call('HDEL', key, fields[k]) end
  end
end
local function remove(did)
  local e = call('HGET', P .. 'online', did)
  if not e then return end
  call('HDEL', P .. 'online', did)
  local fields = {}
  for f in string.gmatch(e, '([^\\t]*)\\t?') do
    if #fields < 4 then fields[#fields + 1] = f end
  end
  tally(fields, -1)
end
local function markOnline(did, parent, cat, model, region, radio, uid)
  if cat == '' then
    call('HINCRBY', P .. 'stats', 'unknown', 1)
  else
    local transport = radio
    if transport == '' then
      local via = parent ~= '' and parent or did
      transport = call('HGET', P .. 'strans', via) or 'tcp'
    end
    if parent ~= '' then call('SADD', P .. 'kids:' .. parent, did) end
    remove(did)
    call('HSET', P .. 'online', did, cat .. '\\t' .. model .. '\\t' .. region .. '\\t' .. transport)
    tally({ cat, model, region, transport }, 1)
  end
  if call('SADD', P .. 'seen', did) == 1 and uid ~= '' then
    if call('HINCRBY', P .. 'owners', uid, 1) == 6 then call('HINCRBY', P .. 'stats', 'over5', 1) end
  end
end
local function markOffline(did)
  remove(did)
  for _, kid in ipairs(call('SMEMBERS', P .. 'kids:' .. did)) do remove(kid) end
  call('DEL', P .. 'kids:' .. did)
end
local function note()
  if not now then return end
  local minute = math.floor(now / 60000) * 60000
  local last = tonumber(call('GET', P .. 'histlast'))
  -- Event time only moves forward at the platform; a late minute folds into the latest bucket.
  if last and minute < last then minute = last end
  local size = call('HLEN', P .. 'online')
  local b = call('HGET', P .. 'hist', minute)
  if b then
    local lo, hi = string.match(b, '^(%-?%d+),(%-?%d+),')
    lo = math.min(tonumber(lo), size); hi = math.max(tonumber(hi), size)
    call('HSET', P .. 'hist', minute, lo .. ',' .. hi .. ',' .. size)
  else
    call('HSET', P .. 'hist', minute, size .. ',' .. size .. ',' .. size)
    call('ZADD', P .. 'histz', minute, minute)
    call('SET', P .. 'histlast', minute)
    local over = call('ZCARD', P .. 'histz') - ${HISTORY_BUCKETS}
    if over > 0 then
      for _, old in ipairs(call('ZRANGE', P .. 'histz', 0, over - 1)) do call('HDEL', P .. 'hist', old) end
      call('ZREMRANGEBYRANK', P .. 'histz', 0, over - 1)
    end
  end
end
-- Counters the events of a batch move, added up here and written once at its end.
local ev = { accepted = 0, missing = 0, duplicates = 0, tooOld = 0 }
local function event(did, seq)
  local bits = P .. 'dd:' .. did
  local high = tonumber(call('HGET', P .. 'hi', did))
  if not high then
    -- The first number seen starts the device's range: it may have counted before the platform
    -- watched, and with several observers (a shared subscription) its events may arrive out of order.
    call('HSET', P .. 'hi', did, seq)
    call('HSET', P .. 'lo', did, seq)
    call('DEL', bits)
  elseif seq > high then
    local gap = seq - high - 1
    if seq - high >= WIN then call('DEL', bits)
    else for s = high + 1, seq - 1 do call('SETBIT', bits, s % WIN, 0) end end
    ev.missing = ev.missing + gap
    call('HSET', P .. 'hi', did, seq)
  elseif seq <= high - WIN then
    ev.tooOld = ev.tooOld + 1
    return
  elseif call('GETBIT', bits, seq % WIN) == 1 then
    ev.duplicates = ev.duplicates + 1
    return
  else
    local lo = tonumber(call('HGET', P .. 'lo', did)) or seq
    if seq < lo then
      -- Below the lowest seen: the range grows down, the numbers between are missing (for now).
      ev.missing = ev.missing + math.max(lo - seq - 1, 0)
      call('HSET', P .. 'lo', did, seq)
    else
      ev.missing = ev.missing - 1
    end
  end
  call('SETBIT', bits, seq % WIN, 1)
  ev.accepted = ev.accepted + 1
end

T = split(nxt())
i = 1
while i <= #T do
  local op = nxt()
  if op == 'U' then
    local did = nxt(); local transport = nxt(); local conn = nxt()
    call('HSET', P .. 'sconn', did, conn)
    call('HSET', P .. 'strans', did, transport)
  elseif op == 'D' then
    local did = nxt(); local conn = nxt()
    -- A stale session (one already replaced by a reconnect with the same client id) changes nothing.
    if (call('HGET', P .. 'sconn', did) or '0') == conn then
      call('HDEL', P .. 'sconn', did)
      call('HDEL', P .. 'strans', did)
      markOffline(did)
    end
    note()
  elseif op == 'N' then
    local did = nxt(); local ts = nxt(); local parent = nxt()
    call('HSET', P .. 'since', did, ts)
    markOnline(did, parent, nxt(), nxt(), nxt(), nxt(), nxt())
    while T[i] == 'C' and T[i + 2] == did do
      i = i + 1
      local kid = nxt(); nxt()
      markOnline(kid, did, nxt(), nxt(), nxt(), nxt(), nxt())
    end
    note()
  elseif op == 'F' then
    local did = nxt(); local ts = tonumber(nxt())
    local since = tonumber(call('HGET', P .. 'since', did))
    if not since or ts >= since then markOffline(did) end
    note()
  elseif op == 'E' then
    local did = nxt(); local seq = tonumber(nxt())
    event(did, seq)
  else
    return redis.error_reply('aiot-sim platform batch: unknown op ' .. tostring(op) .. ' at ' .. (i - 1))
  end
end
for k, n in pairs(ev) do
  if n ~= 0 then call('HINCRBY', P .. 'stats', k, n) end
end
if ev.accepted > 0 then call('HINCRBY', P .. 'kinds', 'event_occured', ev.accepted) end
return call('HLEN', P .. 'online')
`;

/** Reads every figure (and the recent online history and fault records) as one JSON document. */
export const VIEW = `${COMMON}
local function hash(key)
  local out = {}
  local flat = call('HGETALL', key)
  for k = 1, #flat, 2 do out[flat[k]] = tonumber(flat[k + 1]) or flat[k + 1] end
  return out
end
local function exact(w, d) return call('EXISTS', P .. 'x:' .. w .. ':' .. d) == 0 end
local function dayCount(w, d)
  if exact(w, d) then return call('SCARD', P .. 's:' .. w .. ':' .. d) end
  return call('PFCOUNT', P .. 'h:' .. w .. ':' .. d)
end
local function count(w, days)
  local latest = tonumber(call('HGET', P .. 'latest', w))
  if not latest then return 0 end
  local ds = call('ZRANGEBYSCORE', P .. 'days:' .. w, latest - days + 1, latest)
  if #ds == 0 then return 0 end
  if #ds == 1 then return dayCount(w, ds[1]) end
  local all = true
  local sets, hlls = {}, {}
  for k, d in ipairs(ds) do
    if not exact(w, d) then all = false end
    sets[k] = P .. 's:' .. w .. ':' .. d
    hlls[k] = P .. 'h:' .. w .. ':' .. d
  end
  if all then
    local tmp = P .. 'tmp:union'
    local n = call('SUNIONSTORE', tmp, unpack(sets))
    call('DEL', tmp)
    if n <= EXACT then return n end
  end
  return call('PFCOUNT', unpack(hlls))
end
local function averageDaily(w, days)
  local latest = tonumber(call('HGET', P .. 'latest', w))
  local first = tonumber(call('HGET', P .. 'first', w))
  if not latest or not first then return cjson.null end
  local from = math.max(first, latest - days)
  if from >= latest then return cjson.null end
  local sum = 0
  for d = from, latest - 1 do
    if call('ZSCORE', P .. 'days:' .. w, d) then sum = sum + dayCount(w, d) end
  end
  return sum / (latest - from)
end
local stats = hash(P .. 'stats')
local hist = {}
for _, m in ipairs(call('ZRANGE', P .. 'histz', -${VIEW_BUCKETS}, -1)) do
  hist[#hist + 1] = m .. ',' .. call('HGET', P .. 'hist', m)
end
local faults = {}
local flat = call('HGETALL', P .. 'faults')
for k = 2, #flat, 2 do faults[#faults + 1] = flat[k - 1] .. '\\n' .. flat[k] end
local v = {
  epoch = call('GET', P .. 'epoch') or '',
  time = call('GET', P .. 'time') or '',
  online = call('HLEN', P .. 'online'),
  byCategory = hash(P .. 'by:category'), byModel = hash(P .. 'by:model'),
  byRegion = hash(P .. 'by:region'), byTransport = hash(P .. 'by:transport'),
  kinds = hash(P .. 'kinds'),
  stats = stats,
  dad = count('activeDevices', 1), dadWeek = averageDaily('activeDevices', 7),
  dau = count('activeUsers', 1), wau = count('activeUsers', 7), mau = count('activeUsers', 30),
  speakerMau = count('voiceUsers', 30), appMau = count('appUsers', 30),
  hist = hist, faults = faults,
}
return cjson.encode(v)
`;
