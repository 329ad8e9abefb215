-- KEYS: day, tokens, slots, leave, resolved   (read only: one doctor's date at one moment)
return {redis.call('HGETALL', KEYS[1]), redis.call('HLEN', KEYS[2]), redis.call('HVALS', KEYS[3]),
        redis.call('HGETALL', KEYS[4]), redis.call('HGET', KEYS[5], 'n') or '0'}
