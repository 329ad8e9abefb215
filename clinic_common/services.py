"""The one table of the system's processes: every list of services is derived from it.

Each row is a Python package started as `python -m <name>`, listening on 127.0.0.1:<port> unless
`<addr_var>` says otherwise, with /metrics on 127.0.0.1:<metrics_port> unless `<metrics_var>` does.
From it come: every config's default addresses (`*_svc/config.py`, gateway/config.py), the
launcher's ports (clinic_cli/launcher.py), the NATS and Redis users (clinic_tools/access.py), the
packages pyproject.toml installs and the services docker-compose.yml starts (both checked by
tests/unit/clinic_common/test_services.py).

Adding a service is one row here (the order is start order: the gateway, which dials the others,
last), its package with the usual shape, its rows in clinic_tools/access.py (NATS permissions,
Redis keys), its compose service, and its backend in gateway/routes.py if it is public.
"""

from __future__ import annotations

from dataclasses import dataclass

HOST = "127.0.0.1"


@dataclass(frozen=True)
class Service:
    name: str  # the package, the process (`python -m name`), the NATS and Redis user
    port: int  # the documented default gRPC port
    metrics_port: int  # the documented default /metrics port
    addr_var: str  # its listen address; the others dial it there (comma-separated instances)
    metrics_var: str
    http: bool = False  # answers HTTP behind the edge (health: GET /healthz), not gRPC

    @property
    def package(self) -> str:
        return self.name

    @property
    def default_addr(self) -> str:
        return f"{HOST}:{self.port}"

    @property
    def default_metrics_addr(self) -> str:
        return f"{HOST}:{self.metrics_port}"


TABLE: tuple[Service, ...] = (
    Service("schedule_svc", 50064, 9465, "SCHEDULE_SVC_ADDR", "SCHEDULE_SVC_METRICS_ADDR"),
    Service("booking_svc", 50061, 9461, "BOOKING_SVC_ADDR", "BOOKING_SVC_METRICS_ADDR"),
    Service("discount_svc", 50063, 9463, "DISCOUNT_SVC_ADDR", "DISCOUNT_SVC_METRICS_ADDR"),
    Service("notification_svc", 50062, 9462, "NOTIFICATION_SVC_ADDR", "NOTIFICATION_SVC_METRICS_ADDR"),
    Service("frontdesk_svc", 50065, 9466, "FRONTDESK_SVC_ADDR", "FRONTDESK_SVC_METRICS_ADDR"),
    Service("fhir_svc", 50066, 9467, "FHIR_SVC_ADDR", "FHIR_SVC_METRICS_ADDR", http=True),
    Service("gateway", 50051, 9464, "CLINIC_GATEWAY_ADDR", "CLINIC_GATEWAY_METRICS_ADDR"),
)
BY_NAME: dict[str, Service] = {service.name: service for service in TABLE}
GATEWAY = "gateway"  # the public edge: the contract's address, never moved by the launcher

NAMES: tuple[str, ...] = tuple(service.name for service in TABLE)
BACKENDS: tuple[str, ...] = tuple(name for name in NAMES if name != GATEWAY)
ADDR_VARS: dict[str, str] = {service.name: service.addr_var for service in TABLE}
METRICS_VARS: dict[str, str] = {service.name: service.metrics_var for service in TABLE}
DEFAULT_ADDRS: dict[str, str] = {service.name: service.default_addr for service in TABLE}
HTTP_SERVICES: tuple[str, ...] = tuple(service.name for service in TABLE if service.http)


def get(name: str) -> Service:
    return BY_NAME[name]
