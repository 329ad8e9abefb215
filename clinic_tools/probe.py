"""`python -m clinic_tools.probe HOST:PORT [--internal] [--http]`: exit 0 if the server's health is SERVING.

For container health checks. `--internal` dials with the process's internal mutual-TLS certificate
(CLINIC_INTERNAL_TLS_*), as an internal service takes no other connection. `--http`: an HTTP service
(fhir_svc), healthy when GET /healthz answers 200.
"""

from __future__ import annotations

import sys

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from clinic_common import tls


def serving(addr: str, internal: tls.InternalTls | None, timeout_s: float = 2.0) -> bool:
    with tls.channel(addr, internal) as channel:
        try:
            stub = health_pb2_grpc.HealthStub(channel)
            reply = stub.Check(health_pb2.HealthCheckRequest(), timeout=timeout_s)
        except grpc.RpcError:
            return False
    return reply.status == health_pb2.HealthCheckResponse.SERVING


if __name__ == "__main__":
    if "--http" in sys.argv[2:]:
        import os

        from clinic_tools.processes import http_healthy

        env = os.environ if "--internal" in sys.argv[2:] else {}
        sys.exit(0 if http_healthy(sys.argv[1], env, timeout_s=2.0) else 1)
    internal = tls.InternalTls.from_env() if "--internal" in sys.argv[2:] else None
    sys.exit(0 if serving(sys.argv[1], internal) else 1)
