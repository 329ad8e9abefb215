"""The messaging map (clinic_common/messaging.py) against the consumers, the permissions and the
subject tables of README.md and docs/architecture.md."""

from __future__ import annotations

import fnmatch
import re
from pathlib import Path

from clinic_common import messaging, services
from clinic_common import subjects as s
from clinic_tools import access

ROOT = Path(__file__).resolve().parents[3]
SAGA_TOKEN = re.compile(r"`(saga\.[a-z.]+?)\.(?:<id>|\*)`")


def saga_produced() -> set[str]:
    return {p.removesuffix(".>") for m in messaging.MAP.values() for p in m.produces if p.startswith("saga.")}


def table_row(doc: str, first_cell: str) -> list[str]:
    for line in (ROOT / doc).read_text().splitlines():
        if line.startswith(f"| {first_cell} |"):
            return [cell.strip() for cell in re.split(r"(?<!\\)\|", line)[1:-1]]
    raise AssertionError(f"{doc} has no row for {first_cell}")


def test_every_service_has_its_messaging_and_durables_are_unique():
    assert set(messaging.MAP) == set(services.NAMES)
    durables = [c.durable for m in messaging.MAP.values() for c in m.consumes]
    assert len(durables) == len(set(durables))


def test_everything_consumed_is_produced_and_every_saga_subject_is_consumed():
    produced = [p for m in messaging.MAP.values() for p in (*m.produces, *m.fires)]
    filters = [f for m in messaging.MAP.values() for c in m.consumes for f in c.filters]
    for subject in filters:
        example = subject.replace("*", "b-1").replace(">", "x.b-1")
        assert any(fnmatch.fnmatch(example, p.replace(">", "*")) for p in produced), subject
    for prefix in saga_produced():
        assert f"{prefix}.*" in filters, f"nobody consumes {prefix}"


def test_permissions_are_the_map():
    for name, m in messaging.MAP.items():
        perms = access.NATS_PERMISSIONS[name]
        assert set(m.produces) <= set(perms["publish"])
        assert set(m.hears) <= set(perms["subscribe"])
        for c in m.consumes:
            assert f"$JS.API.CONSUMER.MSG.NEXT.{c.stream}.{c.durable}" in perms["publish"]
        published = [p for p in perms["publish"] if not p.startswith(("$JS", s.DLQ_SUBJECTS))]
        assert set(published) == set(m.produces), f"{name} may publish what the map does not say"
    assert access.NATS_PERMISSIONS["gateway"] == {"publish": [], "subscribe": []}


def test_the_saga_stream_tables_list_every_saga_subject():
    for doc in ("README.md", "docs/architecture.md"):
        listed = set(SAGA_TOKEN.findall(table_row(doc, f"`{s.SAGA_STREAM}`")[1]))
        assert listed == saga_produced(), f"{doc}: SAGA row differs from the map: {listed ^ saga_produced()}"


def test_the_readme_names_every_durable_consumer_of_its_stream():
    for m in messaging.MAP.values():
        for c in m.consumes:
            assert f"`{c.durable}`" in table_row("README.md", f"`{c.stream}`")[2], c.durable


def test_the_architecture_table_says_what_each_service_consumes_and_produces():
    for name, m in messaging.MAP.items():
        if not m.uses_nats:
            continue
        _name, _owns, consumes, produces = table_row("docs/architecture.md", f"`{name}`")
        wanted = {f.removesuffix(".*") for c in m.consumes for f in c.filters if f.startswith("saga.")}
        assert set(SAGA_TOKEN.findall(consumes)) == wanted, f"{name} consumes"
        assert set(SAGA_TOKEN.findall(produces)) == {
            p.removesuffix(".>") for p in m.produces if p.startswith("saga.")
        }, f"{name} produces"
        for c in m.consumes:
            assert f"`{c.durable}`" in consumes, f"{name}: durable {c.durable} not named"
        for live in m.hears:
            assert f"`{live}`" in consumes, f"{name}: live {live} not named"
