-- The in-app line of a booking event, written once per idempotency key, and its SENT mark and
-- delivery record: one call where the line and the mark were two (store_record_once, store_mark_sent).
-- KEYS: 1 the line's once-key, 2 the patient's messages, 3 the sent mark, 4 the booking's deliveries
-- ARGV: 1 the line, 2 ttl s, 3 messages kept per patient, 4 the delivery's field, 5 its record,
--       6 the patient field's name, 7 the patient id
local first = record_once(KEYS[1], KEYS[2], ARGV[1], ARGV[2], ARGV[3])
mark_sent(KEYS[3], KEYS[4], ARGV[2], ARGV[4], ARGV[5], ARGV[6], ARGV[7])
return first
