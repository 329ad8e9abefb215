"""schedule_svc: patients, doctors and their days, and the places bookings hold."""
