"""`make bench`'s NATS messages per saga (bench/profile.py's /connz counting, bench/__main__.MessageCount,
bench/report.messages_table): per process and in all, the benchmark's own connections left out."""

from __future__ import annotations

from rich.console import Console

from bench import report as rep
from bench.__main__ import MessageCount
from bench.profile import messages_line, messages_per_saga, messages_total

BEFORE = {"booking_svc": (100, 200), "schedule_svc": (50, 50), "bench-monitor": (5, 5), "idle": (7, 7)}
AFTER = {"booking_svc": (400, 500), "schedule_svc": (250, 150), "bench-monitor": (905, 905), "idle": (7, 7)}


def test_messages_per_saga_are_the_deltas_divided_by_the_sagas_without_the_benchmarks_own():
    rows = messages_per_saga(BEFORE, AFTER, 100)
    assert rows == {"booking_svc": (3.0, 3.0), "schedule_svc": (2.0, 1.0)}  # no bench-monitor, no idle
    assert messages_total(rows) == (5.0, 4.0)
    line = messages_line(rows, "system c=64")
    assert line.startswith("NATS messages per saga, system c=64 (client -> server, server -> client): ")
    assert line.endswith("booking_svc 3.0/3.0, schedule_svc 2.0/1.0; all 5.0/4.0")


def test_a_connection_new_since_the_first_snapshot_counts_from_zero_and_no_sagas_divides_by_one():
    rows = messages_per_saga({}, {"notification_svc": (6, 4)}, 0)
    assert rows == {"notification_svc": (6.0, 4.0)}


def test_rounds_add_up_before_dividing():
    count = MessageCount()
    count.add(BEFORE, AFTER, 100)  # round 1: 500 sent for 100 sagas
    count.add({"booking_svc": (0, 0)}, {"booking_svc": (100, 0), "notification_svc": (30, 60)}, 50)
    summary = count.summary()
    assert summary["sagas"] == 150
    assert summary["per_saga"]["booking_svc"] == (400 / 150, 300 / 150)
    assert summary["per_saga"]["notification_svc"] == (30 / 150, 60 / 150)
    assert "bench-monitor" not in summary["per_saga"]


def test_the_table_has_a_pair_of_columns_per_side_and_an_all_row():
    sides = {
        "A/B ours c=64": {"sagas": 10, "per_saga": {"booking_svc": (3.0, 3.0)}},
        "A/B baseline c=64": {
            "sagas": 20,
            "per_saga": {"booking_svc": (5.0, 6.0), "notification_svc": (2.0, 2.0)},
        },
    }
    console = Console(width=200, record=True)
    console.print(rep.messages_table("NATS messages per saga", sides))
    text = console.export_text()
    assert "A/B ours c=64 sent" in text and "A/B baseline c=64 received" in text
    rows = {line.split("│")[1].strip(): line for line in text.splitlines() if line.count("│") >= 5}
    assert [cell.strip() for cell in rows["notification_svc"].split("│")[2:6]] == ["-", "-", "2.0", "2.0"]
    assert [cell.strip() for cell in rows["all"].split("│")[2:6]] == ["3.0", "3.0", "7.0", "8.0"]


def test_system_calls_are_counted_per_process_and_per_saga():
    """bench/procstat.syscalls reads /proc/<pid>/io; the profile's line divides by the sagas."""
    import os

    from bench.procstat import syscalls
    from bench.profile import syscalls_line

    reads, writes = syscalls(os.getpid())
    r, w = os.pipe()
    for _ in range(10):
        os.write(w, b"x")
    os.read(r, 10)
    os.close(r)
    os.close(w)
    reads2, writes2 = syscalls(os.getpid())
    assert writes2 - writes >= 10 and reads2 - reads >= 1
    assert syscalls(2**22 + 1) == (0, 0)  # no such process
    line = syscalls_line({"a": (0, 0), "b": (10, 20)}, {"a": (40, 80), "b": (30, 60)}, 20)
    assert line == "system calls per saga (read / write): a 2.0/4.0, b 1.0/2.0; all 3.0/6.0"
