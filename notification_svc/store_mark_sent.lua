-- KEYS: 1 the sent mark, 2 the booking's deliveries
-- ARGV: 1 ttl s, 2 the delivery's field, 3 its record, 4 the patient field's name, 5 the patient id
mark_sent(KEYS[1], KEYS[2], ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5])
return 1
