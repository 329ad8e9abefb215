"""What the tools load and no service does: starting a whole system (`make run`, `clinic
scenarios`, the bench, the tests), its processes, embedded servers and least-privilege users."""
