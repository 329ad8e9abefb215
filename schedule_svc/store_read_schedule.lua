-- KEYS: doctor, revision, plans   (read only: the doctor, its revision and plans at one moment)
return {redis.call('GET', KEYS[1]) or '', redis.call('GET', KEYS[2]) or '0', redis.call('HVALS', KEYS[3])}
