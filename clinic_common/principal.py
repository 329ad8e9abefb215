"""Who is calling. The edge authenticates and forwards the identity in metadata; services decide.

A service believes that metadata only from a peer that proved, with a certificate from the internal
CA, that it is the edge or another internal service (clinic_common.tls). A call without a verified
peer, or without an identity, is UNAUTHENTICATED: there is no default caller.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import grpc

from clinic_common import tls
from clinic_common.errors import PermissionDenied, Unauthenticated

SUB_KEY = "x-clinic-sub"
ROLE_KEY = "x-clinic-role"
REQUEST_ID_KEY = "x-request-id"

ADMIN = "admin"
STAFF = "staff"  # the front desk: any patient's bookings, the registry, check-in, queues, availability
PATIENT = "patient"
ROLES = (PATIENT, STAFF, ADMIN)


@dataclass(frozen=True)
class Principal:
    sub: str
    role: str

    @property
    def is_admin(self) -> bool:
        return self.role == ADMIN

    @property
    def is_staff(self) -> bool:
        """Front desk or admin: may act for any patient."""
        return self.role in (STAFF, ADMIN)

    def require_patient_access(self, patient_id: str) -> None:
        if not self.is_staff and self.sub != patient_id:
            raise PermissionDenied("a patient may see and change only their own bookings and records")

    def require_staff(self) -> None:
        if not self.is_staff:
            raise PermissionDenied("staff or admin role required")

    def metadata(self) -> tuple[tuple[str, str], ...]:
        """This caller as identity metadata: for a call made to another internal service on its behalf
        (over mutual TLS, which is what makes the receiving service believe it)."""
        return ((SUB_KEY, self.sub), (ROLE_KEY, self.role))

    def require_admin(self) -> None:
        if not self.is_admin:
            raise PermissionDenied("admin role required")


# What the gateway stamps on every call with CLINIC_AUTH=none (local development): an explicit
# identity it forwards, never something a service assumes for a call that carries none.
ANONYMOUS_ADMIN = Principal(sub="anonymous", role=ADMIN)


def from_metadata(metadata: Iterable[tuple[str, str | bytes]] | None) -> Principal:
    """The identity in the metadata; only meaningful once the peer is verified (see from_context)."""
    values = {key: value for key, value in (metadata or ()) if isinstance(value, str)}
    sub, role = values.get(SUB_KEY), values.get(ROLE_KEY)
    if not sub or not role:
        raise Unauthenticated(f"no caller identity ({SUB_KEY}, {ROLE_KEY}): call through the gateway")
    return Principal(sub=sub, role=role)


def peer_verified(context: grpc.aio.ServicerContext) -> bool:
    """True on a TLS connection whose client presented a certificate the internal CA verified.

    Servers require and verify client certificates in the handshake (InternalTls), so a peer
    certificate here is one the CA signed; no certificate means no TLS handshake took place.
    """
    auth = context.auth_context() or {}
    return auth.get("transport_security_type") == [b"ssl"] and bool(auth.get("x509_pem_cert"))


def from_context(context: grpc.aio.ServicerContext) -> Principal:
    """The caller of an internal rpc: identity metadata from a verified peer, else UNAUTHENTICATED.

    A plaintext peer is believed only in a process started with CLINIC_AUTH=none (a declared
    development machine; without internal TLS no other process starts at all).
    """
    if not peer_verified(context) and not tls.development_mode():
        raise Unauthenticated("caller not verified: internal services take calls only over mutual TLS")
    return from_metadata(context.invocation_metadata())


def request_id(metadata: Iterable[tuple[str, str | bytes]] | None) -> str:
    for key, value in metadata or ():
        if key == REQUEST_ID_KEY and isinstance(value, str):
            return value
    return ""
