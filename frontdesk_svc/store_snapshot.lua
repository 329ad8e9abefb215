-- KEYS: visits, seq   -> {last change sequence, visit JSON ...}, read in one step
local out = {tonumber(redis.call('GET', KEYS[2]) or '0')}
for _, visit in ipairs(redis.call('HVALS', KEYS[1])) do out[#out + 1] = visit end
return out
