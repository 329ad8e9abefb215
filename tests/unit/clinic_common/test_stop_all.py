"""processes.stop_all: one SIGTERM each, then a shared wait (a service takes a second one as "exit now")."""

from __future__ import annotations

import subprocess
import sys

from clinic_tools import processes

# Like a service (clinic_common.runtime): the first SIGTERM starts a clean shutdown (argv[1] seconds), a
# second one exits at once, with 1.
CHILD = """
import asyncio, signal, sys

async def main():
    stop, loop = asyncio.Event(), asyncio.get_running_loop()

    def on_term():
        if stop.is_set():
            sys.exit(1)
        stop.set()

    loop.add_signal_handler(signal.SIGTERM, on_term)
    print("ready", flush=True)
    await stop.wait()
    await asyncio.sleep(float(sys.argv[1]))

asyncio.run(main())
"""


def test_stop_all_sends_one_sigterm_and_lets_each_finish_its_shutdown():
    # Shutdowns of different lengths: each is still shutting down when the one before it has exited.
    procs = [
        subprocess.Popen([sys.executable, "-c", CHILD, str(seconds)], stdout=subprocess.PIPE, text=True)
        for seconds in (0.2, 0.5, 0.8)
    ]
    for proc in procs:
        assert proc.stdout.readline().strip() == "ready"
    processes.stop_all(procs, timeout_s=10)
    assert [proc.returncode for proc in procs] == [0, 0, 0]


def test_stop_all_kills_what_outlives_the_deadline():
    stubborn = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
            "print('ready', flush=True); time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert stubborn.stdout.readline().strip() == "ready"
    processes.stop_all([stubborn], timeout_s=0.3)
    assert stubborn.returncode == -9
