"""`clinic dlq`: list the messages a consumer gave up on, and replay one after a fix.

An operators' tool: it talks to NATS directly (the gateway does not expose the bus), with
`--nats`, else `NATS_URL`, else the `ops` login that `make run` keeps in `$CLINIC_DATA_DIR`.
A dead letter is a `clinic.v1.DeadLetter` holding the original subject and payload, so replaying is
"publish the payload to its subject again"; every consumer is idempotent, so a replay never
doubles an effect. The replay's `Nats-Msg-Id` is derived from the letter, so running the same replay
twice within JetStream's duplicate window publishes once.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import nats
from rich.table import Column, Table

from clinic.v1 import saga_pb2
from clinic_common import nats_io, subjects
from clinic_tools import access

from .client import CliError
from .show import as_dict, console, print_json


def nats_servers(explicit: str | None) -> list[str]:
    if explicit or os.environ.get("NATS_URL"):
        return (explicit or os.environ["NATS_URL"]).split(",")
    data_dir = Path(os.environ.get("CLINIC_DATA_DIR", "./var"))
    if not (data_dir / "credentials.json").exists():
        raise CliError("set NATS_URL (the ops login `make run` prints) or --nats", 2)
    creds = access.Credentials.load_or_create(data_dir)
    return [creds.nats_url(access.OPS, int(os.environ.get("CLINIC_NATS_PORT", "4222")))]


async def run(args) -> int:
    servers = nats_servers(args.nats)

    async def quiet(_exc: Exception) -> None:  # one clear line below, not the client's tracebacks
        return None

    try:
        nc = await nats.connect(servers=servers, connect_timeout=3, allow_reconnect=False, error_cb=quiet)
    except Exception as exc:
        raise CliError(f"cannot reach NATS ({exc.__class__.__name__}): is 'make run' running?", 2) from None
    try:
        js = nc.jetstream(timeout=5)
        if args.action == "replay":
            return await _replay(js, args.seq, keep=args.keep)
        return await _list(js, args.limit, as_json=args.json)
    finally:
        await nc.close()


async def _list(js, limit: int, *, as_json: bool = False) -> int:
    letters = await nats_io.dead_letters(js, newest=limit)
    if as_json:
        return print_json([{"seq": seq, **as_dict(letter)} for seq, letter in letters])
    if not letters:
        console().print("DEAD_LETTERS is empty: no consumer gave up on a message.")
        return 0
    subject = Column("subject", no_wrap=True, overflow="ignore")  # carries the booking id, pasted whole
    table = Table("seq", "dead at (UTC)", "consumer", subject, "tries", "reason", "bytes")
    for seq, letter in letters:
        at = datetime.fromtimestamp(letter.dead_at.seconds, UTC).strftime("%Y-%m-%d %H:%M:%S")
        table.add_row(
            str(seq),
            at,
            letter.consumer,
            letter.subject,
            str(letter.deliveries),
            letter.reason,
            str(len(letter.payload)),
        )
    console().print(table)
    console().print("Replay one after a fix: clinic dlq replay SEQ", highlight=False)
    return 0


async def _replay(js, seq: int | None, *, keep: bool) -> int:
    if seq is None:
        raise CliError("replay needs the letter's SEQ (see `clinic dlq list`)", 2)
    try:
        msg = await js.get_msg(subjects.DLQ_STREAM, seq)
    except nats.js.errors.NotFoundError:
        raise CliError(f"no dead letter {seq} in {subjects.DLQ_STREAM}", 1) from None
    letter = saga_pb2.DeadLetter.FromString(msg.data)
    ack = await js.publish(
        letter.subject,
        letter.payload,
        headers={"Nats-Msg-Id": f"replay:{letter.stream}:{letter.stream_sequence}:{seq}"},
    )
    if not keep:
        await js.delete_msg(subjects.DLQ_STREAM, seq)
    note = " (a duplicate of a replay moments ago: not published twice)" if ack.duplicate else ""
    console().print(
        f"replayed dead letter {seq} to {letter.subject} as {ack.stream} #{ack.seq}{note}"
        + ("" if keep else "; removed from DEAD_LETTERS"),
        highlight=False,
    )
    return 0
