"""`make bench` / `python -m bench`: throughput and latency of the whole system through the gateway.

Starts nats-server (JetStream) and valkey (AOF) on free ports in a fresh temporary directory, the four
services as subprocesses (exactly as in production: `python -m <service>`, configured by environment
variables), and drives the gateway with the generated stubs. The same run measures a reference
pipeline (`bench/reference.py`): the saga's hops with no business logic, so the figures can be read
against what this stack costs at all on this machine. Results go to `bench/results/<UTC time>.json`.

`CLINIC_BENCH_BASELINE=<worktree> make bench` also starts that tree's system (its own `.venv` and
launcher, `bench/baseline.py`) and runs closed loops at c=64 and c=1 alternately with this tree's,
for issue 22's lines against the baseline; without it those lines say "not measured".
"""
