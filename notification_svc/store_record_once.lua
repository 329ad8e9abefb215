-- KEYS: 1 the line's once-key, 2 the patient's messages; ARGV: 1 the line, 2 ttl s, 3 messages kept
return record_once(KEYS[1], KEYS[2], ARGV[1], ARGV[2], ARGV[3])
