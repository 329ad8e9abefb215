"""The `clinic` command: run the system, mint tokens, and talk to a running gateway."""

from __future__ import annotations

import argparse
import os
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="clinic", description="Clinic booking system")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("run", help="start NATS, Redis and all services locally (Ctrl-C stops all)")
    token = sub.add_parser("token", help="mint a JWT for the gateway")
    token.add_argument("--role", choices=["patient", "admin"], required=True)
    token.add_argument("--sub", required=True, help="patient id (or operator name for admins)")
    token.add_argument("--ttl", type=int, default=12 * 3600, help="lifetime in seconds")
    args = parser.parse_args(argv)

    if args.command == "run":
        from .launcher import run

        return run()
    if args.command == "token":
        from gateway.auth import mint

        secret = os.environ.get("CLINIC_JWT_SECRET")
        if not secret:
            from pathlib import Path

            path = Path(os.environ.get("CLINIC_DATA_DIR", "./var")) / "dev-jwt-secret"
            if not path.exists():
                print(
                    "clinic: set CLINIC_JWT_SECRET (or run `make run` once for a dev secret)", file=sys.stderr
                )
                return 2
            secret = path.read_text().strip()
        print(mint(secret, args.sub, args.role, args.ttl))
        return 0
    return 2


if __name__ == "__main__":
    sys.exit(main())
