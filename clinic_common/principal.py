"""Who is calling. The gateway authenticates and forwards the identity in metadata; services decide."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from clinic_common.errors import PermissionDenied

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

    def require_admin(self) -> None:
        if not self.is_admin:
            raise PermissionDenied("admin role required")


# With CLINIC_AUTH=none nothing is authenticated; internal calls without identity act as admin.
ANONYMOUS_ADMIN = Principal(sub="anonymous", role=ADMIN)


def from_metadata(metadata: Iterable[tuple[str, str | bytes]] | None) -> Principal:
    values = {key: value for key, value in (metadata or ()) if isinstance(value, str)}
    sub, role = values.get(SUB_KEY), values.get(ROLE_KEY)
    if not sub or not role:
        return ANONYMOUS_ADMIN
    return Principal(sub=sub, role=role)


def request_id(metadata: Iterable[tuple[str, str | bytes]] | None) -> str:
    for key, value in metadata or ():
        if key == REQUEST_ID_KEY and isinstance(value, str):
            return value
    return ""
