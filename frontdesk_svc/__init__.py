"""frontdesk_svc: the day of the visit (check-in, the queues, calls to the consultation room)."""
