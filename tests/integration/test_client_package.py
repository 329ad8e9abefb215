"""The clinic-api wheel (stubs with .pyi) builds, installs on its own and runs the example."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import zipfile

from tests.harness import ROOT, Client, uid


def build_and_install(target) -> None:
    subprocess.run(["make", "-s", "client"], cwd=ROOT, check=True, capture_output=True, timeout=300)
    wheel = next((ROOT / "dist").glob("clinic_api-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert "clinic/v1/booking_pb2.pyi" in names and "clinic/py.typed" in names
    assert not any("saga" in n for n in names)  # internal payloads stay internal
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), str(wheel)],
        check=True,
        capture_output=True,
        timeout=300,
    )


async def test_the_example_books_and_watches_through_the_installed_wheel(system, tmp_path):
    await asyncio.to_thread(build_and_install, tmp_path / "site")
    env = {
        **os.environ,
        "PYTHONPATH": str(tmp_path / "site"),
        "CLINIC_GATEWAY_ADDR": system.gateway_addr,
        "CLINIC_TOKEN": Client.auth()[0][1].removeprefix("Bearer "),
    }
    where = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-c", "import clinic.v1.booking_pb2 as m; print(m.__file__)"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert where.stdout.startswith(str(tmp_path / "site")), where  # the wheel's stubs, not the repo's
    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, str(ROOT / "examples" / "book_and_watch.py"), uid("example")],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "BOOKING_CREATED" in done.stdout and "CONFIRMED, final price ₹500.00" in done.stdout
