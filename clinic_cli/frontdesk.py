"""The front desk from a terminal: check in, the queue (live with --follow), call, done, no-show."""

from __future__ import annotations

import argparse
import os
from datetime import UTC
from zoneinfo import ZoneInfo

from rich.live import Live
from rich.table import Table

from clinic.v1 import frontdesk_pb2 as f
from clinic.v1 import frontdesk_pb2_grpc

from .client import Api
from .names import Names
from .show import console, id_column

STATE_STYLE = {
    f.VISIT_STATE_WAITING: "yellow",
    f.VISIT_STATE_IN_CONSULTATION: "cyan",
    f.VISIT_STATE_DONE: "green",
    f.VISIT_STATE_NO_SHOW: "magenta",
}


def register(sub) -> None:
    """Adds checkin, queue, call-next, done and no-show to the `clinic` parser."""
    checkin = sub.add_parser("checkin", help="check a booking in on its appointment date")
    checkin.add_argument("booking_id")
    checkin.set_defaults(frontdesk=check_in)
    show = sub.add_parser("queue", help="a doctor's queue of the day (--follow: a live table)")
    show.add_argument("--doctor", default="", help="doctor id (default: the clinic's general queue)")
    show.add_argument("--date", default="", help="YYYY-MM-DD (default today)")
    show.add_argument("--follow", action="store_true", help="keep the table up to date until Ctrl-C")
    show.set_defaults(frontdesk=queue)
    call = sub.add_parser("call-next", help="call the first waiting patient in (staff)")
    call.add_argument("--doctor", default="")
    call.add_argument("--date", default="")
    call.set_defaults(frontdesk=call_next)
    done = sub.add_parser("done", help="the consultation is over (staff)")
    done.add_argument("booking_id")
    done.set_defaults(frontdesk=complete)
    absent = sub.add_parser("no-show", help="the patient did not come (staff)")
    absent.add_argument("booking_id")
    absent.set_defaults(frontdesk=no_show)


def _stub(api: Api) -> frontdesk_pb2_grpc.FrontDeskServiceStub:
    return frontdesk_pb2_grpc.FrontDeskServiceStub(api.channel)


def state(value: int) -> str:
    return f.VisitState.Name(value).removeprefix("VISIT_STATE_")


def visit_line(v: f.Visit) -> str:
    style = STATE_STYLE.get(v.state, "white")
    return f"#{v.position} [{style}]{state(v.state)}[/] booking {v.booking_id} (patient {v.patient_id})"


def _time(ts) -> str:
    """HH:MM:SS in the clinic's time zone (CLINIC_TIMEZONE), blank when unset."""
    if not ts.seconds:
        return ""
    clinic_tz = ZoneInfo(os.environ.get("CLINIC_TIMEZONE", "Asia/Kolkata"))
    return ts.ToDatetime(tzinfo=UTC).astimezone(clinic_tz).strftime("%H:%M:%S")


def table(doctor: str, day: str, visits, sequence: int, patients: dict[str, str] | None = None) -> Table:
    """`doctor`: the doctor's name with the id beside it ("" for the general queue); `patients`:
    the same for each visit's patient, by booking id."""
    title = f"queue of {doctor or 'the clinic (general)'}{' on ' + day if day else ''} · change {sequence}"
    grid = Table(
        "#", "state", id_column("booking"), "patient", "token", "checked in", "called", "done", title=title
    )
    for v in sorted(visits, key=lambda v: v.position):
        style = STATE_STYLE.get(v.state, "white")
        grid.add_row(
            str(v.position),
            f"[{style}]{state(v.state)}[/]",
            v.booking_id,
            (patients or {}).get(v.booking_id, v.patient_id),
            str(v.token or ""),
            _time(v.checked_in_at),
            _time(v.called_at),
            _time(v.done_at),
        )
    return grid


async def check_in(api: Api, args: argparse.Namespace) -> int:
    visit = (await _stub(api).CheckIn(f.CheckInRequest(booking_id=args.booking_id), metadata=api.md)).visit
    console().print(f"checked in: {visit_line(visit)}")
    return 0


async def queue(api: Api, args: argparse.Namespace) -> int:
    stub = _stub(api)
    names = Names(api)
    doctor = await names.doctor(args.doctor)

    async def patients(visits) -> dict[str, str]:
        return {v.booking_id: await names.patient_of(v.booking_id, v.patient_id) for v in visits}

    if not args.follow:
        reply = await stub.GetQueue(f.GetQueueRequest(doctor_id=args.doctor, date=args.date), metadata=api.md)
        console().print(table(doctor, args.date, reply.visits, reply.sequence, await patients(reply.visits)))
        return 0
    visits: dict[int, f.Visit] = {}
    req = f.WatchQueueRequest(doctor_id=args.doctor, date=args.date)
    with Live(table(doctor, args.date, [], 0), console=console(), auto_refresh=False) as live:
        async for item in stub.WatchQueue(req, metadata=api.md):
            if item.WhichOneof("item") == "snapshot":
                visits = {v.position: v for v in item.snapshot.visits}
            else:
                visits[item.change.visit.position] = item.change.visit
            shown = table(doctor, args.date, visits.values(), item.sequence, await patients(visits.values()))
            live.update(shown, refresh=True)
    return 0


async def call_next(api: Api, args: argparse.Namespace) -> int:
    req = f.CallNextRequest(doctor_id=args.doctor, date=args.date)
    visit = (await _stub(api).CallNext(req, metadata=api.md)).visit
    console().print(f"called in: {visit_line(visit)}")
    return 0


async def complete(api: Api, args: argparse.Namespace) -> int:
    req = f.CompleteVisitRequest(booking_id=args.booking_id)
    console().print(f"done: {visit_line((await _stub(api).CompleteVisit(req, metadata=api.md)).visit)}")
    return 0


async def no_show(api: Api, args: argparse.Namespace) -> int:
    req = f.MarkNoShowRequest(booking_id=args.booking_id)
    console().print(f"no-show: {visit_line((await _stub(api).MarkNoShow(req, metadata=api.md)).visit)}")
    return 0
