local function doc_key(tag, doctor, part) return tag .. ':doc:' .. doctor .. ':' .. part end
local function line_key(tag, doctor)
  if doctor == '' then doctor = '-' end
  return doc_key(tag, doctor, 'waiting')
end
local function split(text)
  local out = {}
  for item in string.gmatch(text or '', '[^,]+') do out[#out + 1] = item end
  return out
end
local function load_w(hold)
  local h = redis.call('HMGET', hold, 'doctor', 'cap', 'dstart', 'dend', 's', 'e', 'svcs', 'caps', 'pid')
  return {doctor = h[1] or '', capacity = h[2], dstart = h[3], dend = h[4], s = tonumber(h[5] or '-1'),
          e = tonumber(h[6] or '-1'), services = split(h[7]), caps = split(h[8]), pid = h[9] or '',
          replaces = ''}
end
-- A holder is a booking id, or "<booking>~<move>" for the places a reschedule takes.
local function booking_of(holder) return string.match(holder, '^[^~]+') end
local function overlaps(w, taken)
  local ts, te = string.match(taken, '(%d+),(%d+)')
  return w.s < tonumber(te) and tonumber(ts) < w.e
end
-- A doctor's day as resolved (schedule_svc/domain.py resolve_day: availability, leave, weekly plan,
-- defaults), kept in the date's slot by the scripts that resolve it. A day nobody resolved yet
-- (a hold from before) falls back on the date's availability and the doctor's defaults w recorded.
local function day_of(tag, w)
  local r = redis.call('HMGET', doc_key(tag, w.doctor, 'resolved'),
                       'present', 'capacity', 'start', 'end', 'breaks')
  if r[1] then
    return {present = r[1], capacity = tonumber(r[2]), s = tonumber(r[3]), e = tonumber(r[4]),
            breaks = r[5] or ''}
  end
  local d = redis.call('HMGET', doc_key(tag, w.doctor, 'day'), 'present', 'capacity', 'start', 'end')
  return {present = d[1] or '1', capacity = tonumber(d[2] or w.capacity), s = tonumber(d[3] or w.dstart),
          e = tonumber(d[4] or w.dend), breaks = ''}
end
-- The token w would get (0: no doctor), or nil and why not: doctor | capacity | hours | slot | busy.
-- Outside the hours or across a break is 'hours' (domain.places_fit states the same rule).
-- w.replaces: the holder a reschedule moves from; what it holds counts as free for w (it goes next).
local function fits(tag, w, id)
  local token = 0
  if w.doctor ~= '' then
    local day = day_of(tag, w)
    if day.present == '0' then return nil, 'doctor' end
    local tokens = doc_key(tag, w.doctor, 'tokens')
    for i = 1, day.capacity do
      local holder = redis.call('HGET', tokens, i)
      if not holder or (w.replaces ~= '' and holder == w.replaces) then token = i break end
    end
    if token == 0 then return nil, 'capacity' end
    if w.s >= 0 then
      if w.s < day.s or w.e > day.e then return nil, 'hours' end
      for bs, be in string.gmatch(day.breaks, '(%d+)-(%d+)') do
        if w.s < tonumber(be) and tonumber(bs) < w.e then return nil, 'hours' end
      end
      local slots = redis.call('HGETALL', doc_key(tag, w.doctor, 'slots'))
      for i = 1, #slots, 2 do
        if slots[i] ~= w.replaces and overlaps(w, slots[i + 1]) then return nil, 'slot' end
      end
      -- Patient busy: the patient's intervals on this date, with any doctor (not this booking's own).
      if w.pid ~= '' then
        local mine = booking_of(id)
        local busy = redis.call('HGETALL', tag .. ':patient:' .. w.pid)
        for i = 1, #busy, 2 do
          if booking_of(busy[i]) ~= mine and overlaps(w, busy[i + 1]) then return nil, 'busy' end
        end
      end
    end
  end
  for i, service in ipairs(w.services) do
    local set = tag .. ':svc:' .. service
    local used = redis.call('SCARD', set)
    if w.replaces ~= '' and redis.call('SISMEMBER', set, w.replaces) == 1 then used = used - 1 end
    if used >= tonumber(w.caps[i]) then return nil, 'capacity' end
  end
  return token
end
-- The day as the caller resolved it, if it is not older than what the slot has seen: the count of
-- writes to the date's availability and leave (n) must match, and the doctor's revision (rev: plans,
-- defaults, retirement) must not be behind. Otherwise 'stale': the caller resolves again.
local function resolved_fresh(key, n, rev)
  local cur = redis.call('HMGET', key, 'n', 'rev')
  return tonumber(cur[1] or '0') == tonumber(n) and tonumber(cur[2] or '-1') <= tonumber(rev)
end
local function keep_resolved(key, n, rev, day, expire)
  redis.call('HSET', key, 'n', n, 'rev', rev, 'present', day[1], 'capacity', day[2], 'start', day[3],
             'end', day[4], 'breaks', day[5])
  redis.call('EXPIREAT', key, expire)
end
local function take(tag, id, w, token, expire)
  for _, service in ipairs(w.services) do
    redis.call('SADD', tag .. ':svc:' .. service, id)
    redis.call('EXPIREAT', tag .. ':svc:' .. service, expire)
  end
  if token > 0 then
    redis.call('HSET', doc_key(tag, w.doctor, 'tokens'), token, id)
    redis.call('EXPIREAT', doc_key(tag, w.doctor, 'tokens'), expire)
  end
  if w.doctor ~= '' and w.s >= 0 then
    redis.call('HSET', doc_key(tag, w.doctor, 'slots'), id, w.s .. ',' .. w.e)
    redis.call('EXPIREAT', doc_key(tag, w.doctor, 'slots'), expire)
    if w.pid ~= '' then
      redis.call('HSET', tag .. ':patient:' .. w.pid, id, w.s .. ',' .. w.e)
      redis.call('EXPIREAT', tag .. ':patient:' .. w.pid, expire)
    end
  end
end
local function free(tag, id, w, token)
  if w.doctor ~= '' then
    local tokens = doc_key(tag, w.doctor, 'tokens')
    if token > 0 and redis.call('HGET', tokens, token) == id then redis.call('HDEL', tokens, token) end
    redis.call('HDEL', doc_key(tag, w.doctor, 'slots'), id)
  end
  if w.pid ~= '' then redis.call('HDEL', tag .. ':patient:' .. w.pid, id) end
  for _, service in ipairs(w.services) do redis.call('SREM', tag .. ':svc:' .. service, id) end
end
-- The first waitlisted booking that fits now gets the places, held for it until now + offer_ms;
-- returns its id ('' when none fits). 'o:<id>' in announce until the offer is published.
local function offer_next(tag, now, offer_ms, expire)
  local queue = tag .. ':waitlist'
  for _, id in ipairs(redis.call('ZRANGE', queue, 0, 199)) do
    local hold = tag .. ':hold:' .. id
    if redis.call('HGET', hold, 'state') ~= 'waiting' then
      redis.call('ZREM', queue, id)
    else
      local w = load_w(hold)
      local token = fits(tag, w, id)
      if token then
        take(tag, id, w, token, expire)
        local until_ms = now + offer_ms
        redis.call('HSET', hold, 'state', 'offered', 'token', token, 'expires', until_ms)
        redis.call('ZREM', queue, id)
        redis.call('ZADD', tag .. ':offers', until_ms, id)
        redis.call('ZADD', tag .. ':announce', now, 'o:' .. id)
        redis.call('EXPIREAT', tag .. ':offers', expire)
        redis.call('EXPIREAT', tag .. ':announce', expire)
        return id
      end
    end
  end
  return ''
end
