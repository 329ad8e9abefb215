"""runtime.run tunes the cyclic collector before a service's loop starts (in a child process, so
this test process keeps CPython's defaults)."""

from __future__ import annotations

import json
import subprocess
import sys

from clinic_common import runtime

# A service's shape: runtime.run(main), main reporting the collector's state from inside the loop.
CHILD = """
import gc, json
from clinic_common import runtime

async def main(stop):
    print(json.dumps({"threshold": gc.get_threshold(), "frozen": gc.get_freeze_count()}), flush=True)

runtime.run(main)
"""


def test_a_service_loop_runs_with_start_up_frozen_and_a_larger_young_generation():
    done = subprocess.run(
        [sys.executable, "-c", CHILD],
        capture_output=True,
        text=True,
        timeout=60,
        env={"CLINIC_AUTH": "none", "PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 0, done.stderr
    state = json.loads(done.stdout.strip().splitlines()[-1])
    assert state["threshold"][0] == runtime.GC_YOUNG_THRESHOLD
    assert state["threshold"][0] > 700  # CPython's default, which cost notification_svc 6% of its CPU
    assert state["frozen"] > 1000  # the modules and descriptors loaded at start-up
