"""The `clinic` command: run the system, mint tokens, and use a running gateway."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys

import grpc


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="clinic", description="Clinic booking system")
    p.add_argument("--addr", default=os.environ.get("CLINIC_GATEWAY_ADDR", "127.0.0.1:50051"), help="gateway")
    p.add_argument("--token", default=None, help="JWT (default: CLINIC_TOKEN, or a dev admin token)")
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("run", help="start NATS, Redis and all services locally (Ctrl-C stops all)")
    token = sub.add_parser("token", help="mint a JWT for the gateway")
    token.add_argument("--role", choices=["patient", "staff", "admin"], required=True)
    token.add_argument("--sub", required=True, help="patient id (or operator name for admins)")
    token.add_argument("--ttl", type=int, default=12 * 3600, help="lifetime in seconds")
    services = sub.add_parser("services", help="the medical services on offer")
    services.add_argument("--gender", choices=["female", "male", "other"])
    book = sub.add_parser("book", help="book services and watch the saga live")
    book.add_argument("--patient", required=True)
    book.add_argument("--name", default="")
    book.add_argument("--gender", choices=["female", "male", "other"], required=True)
    book.add_argument("--dob", required=True, help="YYYY-MM-DD")
    book.add_argument("--date", help="appointment date, YYYY-MM-DD (default today)")
    book.add_argument("--request-id")
    book.add_argument("services", nargs="+", metavar="SERVICE_ID")
    watch = sub.add_parser("watch", help="a booking's events: replay, then live")
    watch.add_argument("booking_id")
    watch.add_argument("--follow", action="store_true", help="keep watching after the outcome")
    get = sub.add_parser("get", help="one booking with its history")
    get.add_argument("booking_id")
    bookings = sub.add_parser("bookings", help="a patient's bookings")
    bookings.add_argument("--patient", required=True)
    bookings.add_argument("--page-size", type=int, default=50)
    cancel = sub.add_parser("cancel", help="cancel a booking")
    cancel.add_argument("booking_id")
    cancel.add_argument("--reason")
    quota = sub.add_parser("quota", help="the daily discount quota: show, reset or verify")
    quota.add_argument("action", nargs="?", choices=["show", "reset", "verify"], default="show")
    quota.add_argument("--date", help="YYYY-MM-DD (default today)")
    quota.add_argument("--repair", action="store_true", help="with verify: fix what it finds")
    dlq = sub.add_parser("dlq", help="dead letters: list them, or replay one after a fix (talks to NATS)")
    dlq.add_argument("action", nargs="?", choices=["list", "replay"], default="list")
    dlq.add_argument("seq", nargs="?", type=int, help="with replay: the letter's sequence")
    dlq.add_argument("--keep", action="store_true", help="with replay: leave the letter in DEAD_LETTERS")
    dlq.add_argument("--limit", type=int, default=50, help="with list: the newest N letters")
    dlq.add_argument("--nats", default=None, help="NATS URL (default: NATS_URL, or make run's ops login)")
    sub.add_parser("scenarios", help="run the seed scenarios against the running system")
    load = sub.add_parser("load", help="N bookings at a concurrency, then outcomes and latencies")
    load.add_argument("-n", type=int, default=200)
    load.add_argument("-c", "--concurrency", type=int, default=16)
    load.add_argument("--service", default="gen-consult")
    from . import offers

    offers.register(sub)
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


async def _dispatch(api, args) -> int:
    from zoneinfo import ZoneInfo

    from . import commands, load, offers, scenarios

    async with api:
        if args.command == "scenarios":
            return await scenarios.run(api, ZoneInfo(os.environ.get("CLINIC_TIMEZONE", "Asia/Kolkata")))
        if args.command == "load":
            return await load.run(api, args.n, args.concurrency, args.service)
        if args.command == "offers":
            return await offers.run(api, args)
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
