"""The `clinic` command: run the system, mint tokens, and use a running gateway."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys

import grpc

from . import desk, frontdesk, offers, people, reschedule


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="clinic", description="Clinic booking system")
    p.add_argument("--addr", default=os.environ.get("CLINIC_GATEWAY_ADDR", "127.0.0.1:50051"), help="gateway")
    p.add_argument("--token", default=None, help="JWT (default: CLINIC_TOKEN, or a dev admin token)")
    sub = p.add_subparsers(dest="command", required=True)
    as_json = argparse.ArgumentParser(add_help=False)
    as_json.add_argument("--json", action="store_true", help="machine-readable JSON (proto3 JSON names)")
    sub.add_parser("run", help="start NATS, Redis and all services locally (Ctrl-C stops all)")
    token = sub.add_parser("token", help="mint a JWT for the gateway")
    token.add_argument("--role", choices=["patient", "staff", "admin"], required=True)
    token.add_argument("--sub", required=True, help="patient id (or operator name for admins)")
    token.add_argument("--ttl", type=int, default=12 * 3600, help="lifetime in seconds")
    services = sub.add_parser("services", parents=[as_json], help="the medical services on offer")
    services.add_argument("--gender", choices=["female", "male", "other"])
    book = sub.add_parser("book", help="book services and watch the saga live")
    book.add_argument("--patient", required=True, help="patient id (a registered one needs nothing more)")
    book.add_argument("--name", default="")
    book.add_argument("--gender", choices=["female", "male", "other"], help="with --dob: an inline patient")
    book.add_argument("--dob", help="YYYY-MM-DD")
    book.add_argument("--date", help="appointment date, YYYY-MM-DD (default today)")
    book.add_argument("--doctor", default="", help="doctor id: takes a token of the doctor's day")
    book.add_argument("--at", default="", help="HH:MM (with --doctor): takes that time interval")
    book.add_argument("--duration", type=int, default=0, help="minutes (default the doctor's slot)")
    book.add_argument("--request-id")
    book.add_argument("--note", default="", help="the reason for the visit (at most 500 characters)")
    book.add_argument("services", nargs="+", metavar="SERVICE_ID")
    watch = sub.add_parser("watch", parents=[as_json], help="a booking's events: replay, then live")
    watch.add_argument("booking_id")
    watch.add_argument("--follow", action="store_true", help="keep watching after the outcome")
    get = sub.add_parser("get", parents=[as_json], help="one booking with its history")
    get.add_argument("booking_id")
    bookings = sub.add_parser(
        "bookings", parents=[as_json], help="a patient's bookings, or a day's (staff): --csv, the day sheet"
    )
    bookings.add_argument("--patient", default="")
    bookings.add_argument("--date", default="", help="YYYY-MM-DD appointment date")
    bookings.add_argument("--from", dest="date_from", default="", help="YYYY-MM-DD, with --to (inclusive)")
    bookings.add_argument("--to", dest="date_to", default="", help="YYYY-MM-DD (inclusive)")
    bookings.add_argument("--doctor", default="", help="doctor id")
    bookings.add_argument("--csv", action="store_true", help="the day sheet as CSV on stdout")
    bookings.add_argument("--page-size", type=int, default=50)
    cancel = sub.add_parser("cancel", help="cancel a booking")
    cancel.add_argument("booking_id")
    cancel.add_argument("--reason")
    quota = sub.add_parser("quota", parents=[as_json], help="the daily discount quota: show, reset or verify")
    quota.add_argument("action", nargs="?", choices=["show", "reset", "verify"], default="show")
    quota.add_argument("--date", help="YYYY-MM-DD (default today)")
    quota.add_argument("--repair", action="store_true", help="with verify: fix what it finds")
    dlq = sub.add_parser(
        "dlq", parents=[as_json], help="dead letters: list them, or replay one after a fix (talks to NATS)"
    )
    dlq.add_argument("action", nargs="?", choices=["list", "replay"], default="list")
    dlq.add_argument("seq", nargs="?", type=int, help="with replay: the letter's sequence")
    dlq.add_argument("--keep", action="store_true", help="with replay: leave the letter in DEAD_LETTERS")
    dlq.add_argument("--limit", type=int, default=50, help="with list: the newest N letters")
    dlq.add_argument("--nats", default=None, help="NATS URL (default: NATS_URL, or make run's ops login)")
    scenarios = sub.add_parser(
        "scenarios", help="the seed scenarios, PASS/FAIL, on a throwaway system of their own (or --live)"
    )
    scenarios.add_argument(
        "--live",
        action="store_true",
        help="run against the system at --addr instead (it says what it changes)",
    )
    scenarios.add_argument("--yes", action="store_true", help="with --live: do not ask for confirmation")
    load = sub.add_parser("load", help="N bookings at a concurrency, then outcomes and latencies")
    load.add_argument("-n", type=int, default=200)
    load.add_argument("-c", "--concurrency", type=int, default=16)
    load.add_argument("--service", default="gen-consult")
    people.add_parsers(sub)
    desk.add_parsers(sub, as_json)
    frontdesk.register(sub)  # checkin, queue, call-next, done, no-show
    offers.register(sub)  # offers accept
    reschedule.register(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.command == "run":
        from .launcher import run

        return run()
    if args.command == "token":
        return _token(args)
    from .client import Api, CliError, describe, resolve_token

    if args.command == "dlq":
        from . import deadletters

        try:
            return asyncio.run(deadletters.run(args))
        except CliError as err:
            print(f"clinic: {err}", file=sys.stderr)
            return err.code

    if args.command == "scenarios":
        return _scenarios(args)
    try:
        return asyncio.run(_dispatch(Api(args.addr, resolve_token(args.token)), args))
    except grpc.aio.AioRpcError as err:
        error = describe(err, args.addr)
    except CliError as err:
        error = err
    except KeyboardInterrupt:
        return 130
    print(f"clinic: {error}", file=sys.stderr)
    return error.code


def _scenarios(args) -> int:
    """Against a throwaway system by default; against the live one only when asked, and confirmed."""
    from zoneinfo import ZoneInfo

    from . import scenarios
    from .client import Api, CliError, describe, resolve_token
    from .launcher import LaunchError
    from .sandbox import Throwaway
    from .show import console

    out = console()
    tz = ZoneInfo(os.environ.get("CLINIC_TIMEZONE", "Asia/Kolkata"))

    async def against(api: Api, confirm: bool) -> int:
        async with api:
            if confirm and not await _confirm_live(api, args, scenarios):
                return 2
            return await scenarios.run(api, tz)

    try:
        if args.live:
            return asyncio.run(against(Api(args.addr, resolve_token(args.token)), confirm=True))
        out.print("starting a throwaway system (NATS, valkey and the services on free ports, in a temporary")
        out.print("directory); the running system, if any, is not touched")
        with Throwaway(lambda text: out.print(text)) as system:
            out.print(f"throwaway system up, gateway {system.gateway_addr}")
            code = asyncio.run(against(Api(system.gateway_addr, system.token), confirm=False))
        out.print("throwaway system stopped and removed")
        return code
    except grpc.aio.AioRpcError as err:
        error = describe(err, args.addr)
    except (CliError, LaunchError) as err:
        error = err if isinstance(err, CliError) else CliError(str(err))
    except KeyboardInterrupt:
        return 130
    print(f"clinic: {error}", file=sys.stderr)
    return error.code


async def _confirm_live(api, args, scenarios) -> bool:
    if not args.yes and not sys.stdin.isatty():
        print(
            f"clinic: scenarios --live changes the system at {args.addr} (real bookings, today's discount "
            "quota); run it from a terminal to confirm, or add --yes",
            file=sys.stderr,
        )
        return False
    print(f"clinic scenarios --live runs the seed scenarios against the system at {args.addr}. It will:")
    print(await scenarios.plan(api))
    if args.yes:
        return True
    answer = await asyncio.to_thread(input, "Type 'yes' to go on: ")
    if answer.strip().lower() != "yes":
        print("clinic: nothing was changed", file=sys.stderr)
        return False
    return True


async def _dispatch(api, args) -> int:
    from . import commands, load

    async with api:
        if args.command == "load":
            return await load.run(api, args.n, args.concurrency, args.service)
        if hasattr(args, "frontdesk"):
            return await args.frontdesk(api, args)
        if args.command in people.COMMANDS:
            return await people.run(api, args)
        if args.command in desk.COMMANDS:
            return await desk.run(api, args)
        if args.command == "offers":
            return await offers.run(api, args)
        if args.command == "reschedule":
            return await reschedule.run(api, args)
        return await getattr(commands, args.command)(api, args)


def _token(args) -> int:
    from pathlib import Path

    from gateway.auth import mint

    secret = os.environ.get("CLINIC_JWT_SECRET")
    if not secret:
        path = Path(os.environ.get("CLINIC_DATA_DIR", "./var")) / "dev-jwt-secret"
        if not path.exists():
            print("clinic: set CLINIC_JWT_SECRET (or run `make run` once for a dev secret)", file=sys.stderr)
            return 2
        secret = path.read_text().strip()
    print(mint(secret, args.sub, args.role, args.ttl))
    return 0


if __name__ == "__main__":
    sys.exit(main())
