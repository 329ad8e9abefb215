"""The printed tables (rich) and the JSON written to bench/results/."""

from __future__ import annotations

import json
from pathlib import Path

from rich.console import Console
from rich.table import Table

from .load import Result
from .profile import messages_line, messages_total

SYSTEM_PROCS = (
    "gateway",
    "booking_svc",
    "schedule_svc",
    "discount_svc",
    "notification_svc",
    "frontdesk_svc",
    "nats-server",
    "valkey",
)
HEADERS = {"gateway": "gateway (envoy)"}  # `python -m gateway` execs envoy: same pid
REF_PROCS = ("ref-front", "ref-worker-a", "ref-worker-b", "nats-server", "valkey")

# Issue 12's targets, each measured against the reference pipeline in the same run.
TARGET_RATIO = 0.6  # throughput at 64 in flight, as a share of the reference's
TARGET_P50_MS_AT_C1 = 4.0
TARGET_P99_MS_AT_HALF_REF = 50.0  # open loop at half the reference's throughput, nothing refused
TARGET_CPU_RATIO = 2.0  # CPU per saga at c=64 (every process but the load generator), vs the reference
OPEN_HALF_REF = "open 50% ref"

# Issue 22's targets: against a baseline tree (CLINIC_BENCH_BASELINE, measured alternately with this
# tree in the same run) and against the reference.
AB_PREFIX = {"ours": "A/B ours", "baseline": "A/B baseline"}
TARGET22_VS_BASELINE = 2.0  # throughput at c=64, as a multiple of the baseline's
TARGET22_VS_REF = 0.35  # throughput at c=64, as a share of the reference's
TARGET22_P50_MS_AT_C1 = 4.0
TARGET22_P99_SHARE = 0.5  # p99 at c=64, as a share of the baseline's
TARGET22_CPU_RATIO = 3.0


def _f(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def _errors(r: Result) -> str:
    n = sum(r.errors.values())
    return "0" if not n else ", ".join(f"{k}:{v}" for k, v in r.errors.items())


def latency_table(title: str, results: list[Result]) -> Table:
    table = Table(title=title, title_justify="left")
    columns = ("phase", "offered", "sagas/s", "done", "p50 ms", "p90 ms", "p99 ms", "max ms")
    for col in (*columns, "dropped", "drain s", "errors"):
        table.add_column(col, justify="left" if col == "phase" else "right")
    for r in results:
        offered = f"c={r.concurrency}" if r.kind == "closed" else f"{r.offered_rate:,.0f}/s"
        table.add_row(
            r.name,
            offered,
            _f(r.rate),
            f"{r.completed:,}",
            _f(r.pct(50), 2),
            _f(r.pct(90), 2),
            _f(r.pct(99), 2),
            _f(max(r.latencies_ms) if r.latencies_ms else None, 1),
            "-" if r.kind == "closed" else f"{r.dropped:,}",
            "-" if r.kind == "closed" else _f(r.drain_s, 1),
            _errors(r),
        )
    return table


def cpu_table(title: str, results: list[Result], procs: tuple[str, ...]) -> Table:
    table = Table(title=title, title_justify="left")
    table.add_column("phase")
    for p in (*procs, "loadgen", "sum", "others*"):
        table.add_column(HEADERS.get(p, p), justify="right")
    for r in results:
        per = r.cpu_per_saga()
        table.add_row(
            r.name,
            *(_f(per.get(p), 3) for p in procs),
            _f(per.get("loadgen"), 3),
            _f(per.get("ours"), 3),
            _f(per.get("others"), 3),
        )
    return table


def rss_table(title: str, peaks: dict[str, float | None], procs: tuple[str, ...]) -> Table:
    table = Table(title=title, title_justify="left")
    for p in (*procs, "loadgen"):
        table.add_column(HEADERS.get(p, p), justify="right")
    table.add_row(*(_f(peaks.get(p), 1) for p in (*procs, "loadgen")))
    return table


def messages_table(title: str, sides: dict[str, dict]) -> Table:
    """NATS messages per saga, per process (client -> server / server -> client) and in all, one
    pair of columns per side (`{"system c=64": {"sagas": n, "per_saga": {name: [sent, got]}}}`)."""
    table = Table(title=title, title_justify="left")
    table.add_column("process")
    for side in sides:
        table.add_column(f"{side} sent", justify="right")
        table.add_column(f"{side} received", justify="right")
    names = sorted({name for m in sides.values() for name in m["per_saga"]})
    for name in (*names, "all"):
        row = [name]
        for m in sides.values():
            per = m["per_saga"]
            if name == "all":
                sent, got = messages_total(per)
            else:
                sent, got = per.get(name, (None, None))
            row += [_f(sent), _f(got)]
        table.add_row(*row)
    sagas = ", ".join(f"{side} {m['sagas']:,}" for side, m in sides.items())
    table.caption = f"sagas counted: {sagas}; each phase until its consumers were quiet (notifications in)"
    return table


def _cpu(r: Result | None) -> float | None:
    """CPU ms per saga of the system (or reference) itself: every process but the load generator."""
    if r is None or not r.completed:
        return None
    per = r.cpu_per_saga()
    return (per.get("ours") or 0.0) - (per.get("loadgen") or 0.0)


def targets(by_name: dict[str, Result]) -> list[dict[str, object]]:
    sys64, ref64 = by_name.get("closed c=64"), by_name.get("ref closed c=64")
    ratio = sys64.rate / ref64.rate if sys64 and ref64 and ref64.rate else None
    c1, ref1 = by_name.get("closed c=1"), by_name.get("ref closed c=1")
    p50 = c1.pct(50) if c1 else None
    half = by_name.get(OPEN_HALF_REF)
    p99 = half.pct(99) if half else None
    cpu, ref_cpu = _cpu(sys64), _cpu(ref64)
    cpu_ratio = cpu / ref_cpu if cpu is not None and ref_cpu else None
    doc64, doc1 = by_name.get("doctor c=64"), by_name.get("doctor c=1")
    rows = [
        {
            "target": f"throughput (c=64) >= {TARGET_RATIO} x reference",
            "value": (
                f"{sys64.rate:,.0f}/s vs ref {ref64.rate:,.0f}/s = {ratio:.2f}x" if ratio is not None else "-"
            ),
            "ratio": None if ratio is None else round(ratio, 3),
            "pass": ratio is not None and ratio >= TARGET_RATIO,
        },
        {
            "target": f"p50 <= {TARGET_P50_MS_AT_C1:.0f} ms at concurrency 1",
            "value": f"{_f(p50, 2)} ms (ref {_f(ref1.pct(50) if ref1 else None, 2)} ms)",
            "p50_ms": p50,
            "pass": p50 is not None and p50 <= TARGET_P50_MS_AT_C1,
        },
        {
            "target": f"open loop at half the ref's throughput: p99 <= {TARGET_P99_MS_AT_HALF_REF:.0f} ms, "
            "none refused",
            "value": (
                f"{_f(p99, 2)} ms at {half.offered_rate:,.0f}/s offered (achieved {half.rate:,.0f}/s, "
                f"dropped {half.dropped:,}, refused {_errors(half)})"
                if half
                else "-"
            ),
            "p99_ms": p99,
            "pass": half is not None
            and p99 is not None
            and p99 <= TARGET_P99_MS_AT_HALF_REF
            and not half.dropped
            and not half.errors,
        },
        {
            "target": f"CPU per saga (c=64) <= {TARGET_CPU_RATIO:.0f} x reference's",
            "value": (
                f"{cpu:.2f} ms vs ref {ref_cpu:.2f} ms = {cpu_ratio:.2f}x" if cpu_ratio is not None else "-"
            ),
            "cpu_ratio": None if cpu_ratio is None else round(cpu_ratio, 3),
            "pass": cpu_ratio is not None and cpu_ratio <= TARGET_CPU_RATIO,
        },
        {
            "target": "memory flat over `make soak`",
            "value": "not measured by this run: `make soak` prints each process's RSS growth",
            "pass": None,
        },
    ]
    if doc64 and sys64:  # side by side: the default booking and one with a doctor (not a target)
        rows.append(
            {
                "target": "with a doctor (side by side, not a target)",
                "value": f"c=64 {doc64.rate:,.0f}/s vs {sys64.rate:,.0f}/s default; c=1 p50 "
                f"{_f(doc1.pct(50) if doc1 else None, 2)} ms vs {_f(p50, 2)} ms; CPU/saga "
                f"{_f(_cpu(doc64), 2)} vs {_f(cpu, 2)} ms",
                "pass": None,
            }
        )
    return rows


def _mean(values: list[float | None]) -> float | None:
    got = [v for v in values if v is not None]
    return sum(got) / len(got) if got else None


def _ab(ab: list[Result], side: str, concurrency: int) -> list[Result]:
    prefix = f"{AB_PREFIX[side]} c={concurrency} #"
    return [r for r in ab if r.name.startswith(prefix)]


def targets_issue22(by_name: dict[str, Result], ab: list[Result], tree) -> list[dict[str, object]]:
    """Issue 22's lines. Without a baseline (CLINIC_BENCH_BASELINE unset) its two lines say
    "not measured" and carry no verdict: never a PASS."""
    not_measured = "not measured: set CLINIC_BENCH_BASELINE=<worktree of the baseline commit>"
    ours64, base64 = _ab(ab, "ours", 64), _ab(ab, "baseline", 64)
    rows: list[dict[str, object]] = []
    if ours64 and base64:
        o, b = _mean([r.rate for r in ours64]), _mean([r.rate for r in base64])
        x = o / b if b else None
        rows.append(
            {
                "target": f"throughput (c=64) >= {TARGET22_VS_BASELINE} x baseline (A/B, alternating)",
                "value": f"ours {' / '.join(f'{r.rate:,.0f}' for r in ours64)} vs baseline "
                f"{' / '.join(f'{r.rate:,.0f}' for r in base64)}/s = {_f(x, 2)}x ({tree})",
                "ratio": None if x is None else round(x, 3),
                "pass": x is not None and x >= TARGET22_VS_BASELINE,
            }
        )
        op, bp = _mean([r.pct(99) for r in ours64]), _mean([r.pct(99) for r in base64])
        share = op / bp if op is not None and bp else None
        rows.append(
            {
                "target": f"p99 (c=64) <= {TARGET22_P99_SHARE} x baseline's (A/B, alternating)",
                "value": f"ours {' / '.join(_f(r.pct(99), 1) for r in ours64)} ms vs baseline "
                f"{' / '.join(_f(r.pct(99), 1) for r in base64)} ms = {_f(share, 2)}x",
                "ratio": None if share is None else round(share, 3),
                "pass": share is not None and share <= TARGET22_P99_SHARE,
            }
        )
    else:
        for text in (
            f"throughput (c=64) >= {TARGET22_VS_BASELINE} x baseline (A/B, alternating)",
            f"p99 (c=64) <= {TARGET22_P99_SHARE} x baseline's (A/B, alternating)",
        ):
            rows.append({"target": text, "value": not_measured, "pass": None})
    sys64, ref64 = by_name.get("closed c=64"), by_name.get("ref closed c=64")
    ratio = sys64.rate / ref64.rate if sys64 and ref64 and ref64.rate else None
    rows.append(
        {
            "target": f"throughput (c=64) >= {TARGET22_VS_REF} x reference",
            "value": (
                f"{sys64.rate:,.0f}/s vs ref {ref64.rate:,.0f}/s = {ratio:.2f}x" if ratio is not None else "-"
            ),
            "ratio": None if ratio is None else round(ratio, 3),
            "pass": ratio is not None and ratio >= TARGET22_VS_REF,
        }
    )
    c1 = by_name.get("closed c=1")
    p50 = c1.pct(50) if c1 else None
    ours1 = _ab(ab, "ours", 1)
    base1 = _ab(ab, "baseline", 1)
    extra = ""
    if ours1 and base1:
        extra = (
            f"; A/B ours {' / '.join(_f(r.pct(50), 2) for r in ours1)} vs baseline "
            f"{' / '.join(_f(r.pct(50), 2) for r in base1)} ms"
        )
    rows.append(
        {
            "target": f"median (c=1) <= {TARGET22_P50_MS_AT_C1:.0f} ms",
            "value": f"{_f(p50, 2)} ms{extra}",
            "p50_ms": p50,
            "pass": p50 is not None and p50 <= TARGET22_P50_MS_AT_C1,
        }
    )
    cpu, ref_cpu = _cpu(sys64), _cpu(ref64)
    cpu_ratio = cpu / ref_cpu if cpu is not None and ref_cpu else None
    rows.append(
        {
            "target": f"CPU per saga (c=64, all processes) <= {TARGET22_CPU_RATIO:.0f} x reference's",
            "value": (
                f"{cpu:.2f} ms vs ref {ref_cpu:.2f} ms = {cpu_ratio:.2f}x" if cpu_ratio is not None else "-"
            ),
            "cpu_ratio": None if cpu_ratio is None else round(cpu_ratio, 3),
            "pass": cpu_ratio is not None and cpu_ratio <= TARGET22_CPU_RATIO,
        }
    )
    return rows


def targets_table(rows: list[dict[str, object]], title: str = "Targets") -> Table:
    table = Table(title=title, title_justify="left")
    table.add_column("target")
    table.add_column("measured", justify="right")
    table.add_column("", justify="center")
    for row in rows:
        verdict = {True: "PASS", False: "FAIL", None: "-"}[row["pass"]]
        table.add_row(str(row["target"]), str(row["value"]), verdict)
    return table


def render(
    console: Console, report: dict, system: list[Result], reference: list[Result], ab: list[Result] = ()
) -> None:
    title = "System, through the gateway (latency: CreateBooking sent -> final event)"
    console.print(latency_table(title, system))
    console.print(latency_table("Reference pipeline (same hops, no business logic)", reference))
    console.print(targets_table(report["targets"]))
    if ab:
        console.print(latency_table(f"A/B against {report.get('baseline_tree')} (alternating)", list(ab)))
        console.print(cpu_table("CPU ms per saga, A/B", list(ab), SYSTEM_PROCS))
    console.print(targets_table(report.get("targets_issue22") or [], "Targets of issue 22"))
    for row in report.get("targets_issue22") or []:  # one plain line each, for grep and the note
        verdict = {True: "PASS", False: "FAIL", None: "not measured"}[row["pass"]]
        console.print(f"issue 22: {verdict}: {row['target']}: {row['value']}", highlight=False)
    messages = report.get("nats_messages") or {}
    if messages:
        console.print(messages_table("NATS messages per saga (closed loop c=64)", messages))
        for side, m in messages.items():  # one plain line each, for grep and the note
            console.print(messages_line(m["per_saga"], side), highlight=False)
    console.print(cpu_table("CPU ms per saga, system", system, SYSTEM_PROCS))
    console.print(cpu_table("CPU ms per saga, reference", reference, REF_PROCS))
    console.print(rss_table("Peak RSS (VmHWM) MB, system", report["peak_rss_mb"]["system"], SYSTEM_PROCS))
    console.print(rss_table("Peak RSS (VmHWM) MB, reference", report["peak_rss_mb"]["reference"], REF_PROCS))
    idle = report.get("idle_cpu_ms_per_s") or {}
    if idle:
        console.print(
            "Idle CPU ms/s (background duties): "
            + ", ".join(f"{k} {v:.1f}" for k, v in idle.items() if k in (*SYSTEM_PROCS, "loadgen")),
            highlight=False,
        )
    console.print(
        "* others: CPU the rest of the machine (other users' processes) used during the phase, divided by "
        "the phase's sagas: a noise indicator, not a cost of this system.",
        highlight=False,
    )


def write_json(path: Path, report: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=1, default=str) + "\n")
