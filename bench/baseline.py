"""A/B against another tree of this project (issue 22): `CLINIC_BENCH_BASELINE=/path make bench`.

The baseline system is started from that tree with that tree's own virtualenv and launcher (its
`bench.launcher.Stack`: its services, servers, users and ACLs as it knew them), by a small driver run
with `<tree>/.venv/bin/python`; the driver prints the gateway address, the JWT secret and the pids as
one JSON line, then holds the system up until its stdin closes. This benchmark then drives it with the
same load generator as ours (the public API is the same), so the A/B phases can alternate
ours, baseline, ours, baseline… in the same minutes.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

ENV = "CLINIC_BENCH_BASELINE"

DRIVER = r"""
import asyncio, json, sys
from pathlib import Path
from bench.launcher import Stack

async def main():
    stack = Stack(Path(sys.argv[1]))
    try:
        await stack.start()
        print(json.dumps({"gateway": stack.gateway_addr, "jwt": stack.jwt_secret,
                          "pids": stack.pids(), "nats": stack.ops_nats_url,
                          "monitor": stack.monitor_port}), flush=True)
        await asyncio.to_thread(sys.stdin.read)
    finally:
        stack.stop()

asyncio.run(main())
"""


def baseline_tree() -> Path | None:
    """The tree named by CLINIC_BENCH_BASELINE, or None; a bad value stops the run with one line."""
    value = os.environ.get(ENV, "").strip()
    if not value:
        return None
    tree = Path(value).resolve()
    if not (tree / ".venv" / "bin" / "python").exists() or not (tree / "bench" / "launcher.py").exists():
        raise SystemExit(f"{ENV}={value}: no .venv or bench there (`make install` in it)")
    return tree


@dataclass
class BaselineStack:
    tree: Path
    data_dir: Path
    proc: subprocess.Popen | None = None
    info: dict = field(default_factory=dict)

    @property
    def gateway_addr(self) -> str:
        return self.info["gateway"]

    @property
    def jwt_secret(self) -> str:
        return self.info["jwt"]

    @property
    def ops_nats_url(self) -> str:
        return self.info["nats"]

    @property
    def monitor_port(self) -> int:
        """nats-server's HTTP monitor (/connz: messages per connection)."""
        return int(self.info["monitor"])

    def pids(self) -> dict[str, int]:
        return {k: int(v) for k, v in self.info["pids"].items()}

    def _spawn(self) -> bytes:
        """Start the driver and read its one line (blocking: run in a thread)."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH", ENV)}
        env["PYTHONPATH"] = str(self.tree)
        log = open(self.data_dir / "baseline-driver.log", "wb")
        self.proc = subprocess.Popen(
            [str(self.tree / ".venv" / "bin" / "python"), "-c", DRIVER, str(self.data_dir)],
            cwd=self.tree,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log,
        )
        return self.proc.stdout.readline()

    async def start(self, timeout_s: float = 120.0) -> BaselineStack:
        line = await asyncio.wait_for(asyncio.to_thread(self._spawn), timeout_s)
        if not line:
            raise RuntimeError(f"the baseline system did not start (see {self.data_dir}/baseline-driver.log)")
        self.info = json.loads(line)
        return self

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        try:
            self.proc.stdin.close()  # the driver stops its stack and exits
            self.proc.wait(30)
        except (OSError, subprocess.TimeoutExpired):
            self.proc.kill()
            self.proc.wait(5)
