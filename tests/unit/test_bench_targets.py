"""Issue 22's PASS/FAIL lines (bench/report.targets_issue22): against the baseline only when measured."""

from __future__ import annotations

from bench import report as rep
from bench.load import Result


def _closed(name: str, concurrency: int, sagas: int, latency_ms: float, cpu_ms: float) -> Result:
    r = Result(name, "closed", 1.0, [latency_ms] * sagas, concurrency=concurrency)
    r.cpu_ms = {"ours": cpu_ms * sagas, "loadgen": 0.0}
    return r


def _by_name(*results: Result) -> dict[str, Result]:
    return {r.name: r for r in results}


SYSTEM = _by_name(
    _closed("closed c=64", 64, 400, 100.0, 3.0),
    _closed("closed c=1", 1, 300, 3.5, 9.0),
    _closed("ref closed c=64", 64, 1000, 50.0, 1.2),
)


def test_without_a_baseline_its_lines_say_not_measured_and_never_pass():
    rows = rep.targets_issue22(SYSTEM, [], None)
    baseline_rows = [r for r in rows if "baseline" in str(r["target"])]
    assert len(baseline_rows) == 2
    assert all(r["pass"] is None and "not measured" in str(r["value"]) for r in baseline_rows)
    by_target = {str(r["target"]).split(" ")[0]: r["pass"] for r in rows if r not in baseline_rows}
    assert by_target == {"throughput": True, "median": True, "CPU": True}  # 0.40x, 3.5 ms, 2.5x


def test_against_a_baseline_throughput_and_tail_are_judged_from_the_alternating_rounds():
    ab = [
        _closed("A/B ours c=64 #1", 64, 500, 90.0, 3.0),
        _closed("A/B baseline c=64 #1", 64, 220, 200.0, 7.0),
        _closed("A/B ours c=64 #2", 64, 460, 95.0, 3.0),
        _closed("A/B baseline c=64 #2", 64, 230, 210.0, 7.0),
    ]
    rows = rep.targets_issue22(SYSTEM, ab, "/tmp/base")
    throughput, tail = rows[0], rows[1]
    assert throughput["ratio"] == round(480 / 225, 3) and throughput["pass"] is True  # 2.13x
    assert tail["pass"] is True  # 92.5 ms against 205 ms: under half
    ab[1] = _closed("A/B baseline c=64 #1", 64, 260, 200.0, 7.0)  # 480 against 245/s: 1.96x
    assert rep.targets_issue22(SYSTEM, ab, "/tmp/base")[0]["pass"] is False
    ab[0] = _closed("A/B ours c=64 #1", 64, 500, 150.0, 3.0)  # a tail above half the baseline's
    assert rep.targets_issue22(SYSTEM, ab, "/tmp/base")[1]["pass"] is False
