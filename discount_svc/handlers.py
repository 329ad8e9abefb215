"""clinic.v1.AdminService: quota inspection and reset, for admins."""

from __future__ import annotations

from zoneinfo import ZoneInfo

from clinic.v1 import admin_pb2, admin_pb2_grpc
from clinic_common import rpc
from clinic_common.clock import Clock, clinic_day, parse_date
from clinic_common.errors import InvalidArgument

from .store import QuotaState, QuotaStore
from .verify import QuotaVerifier


def _quota(state: QuotaState) -> admin_pb2.Quota:
    return admin_pb2.Quota(date=state.day, limit=state.limit, used=state.used, remaining=state.remaining)


class AdminServicer(admin_pb2_grpc.AdminServiceServicer):
    def __init__(
        self, quota: QuotaStore, verifier: QuotaVerifier, tz: ZoneInfo, clock: Clock | None = None
    ) -> None:
        self._quota = quota
        self._verifier = verifier
        self._tz = tz
        self._clock = clock or Clock()

    def _day(self, text: str) -> str:
        if not text:
            return clinic_day(self._clock.now(), self._tz).isoformat()
        try:
            return parse_date(text).isoformat()
        except ValueError as exc:
            raise InvalidArgument([("date", str(exc))]) from None

    @rpc.unary
    async def GetQuota(self, request, context, who):
        who.require_admin()
        return admin_pb2.GetQuotaResponse(quota=_quota(await self._quota.state(self._day(request.date))))

    @rpc.unary
    async def ResetQuota(self, request, context, who):
        who.require_admin()
        return admin_pb2.ResetQuotaResponse(quota=_quota(await self._quota.reset(self._day(request.date))))

    @rpc.unary
    async def VerifyQuota(self, request, context, who):
        who.require_admin()
        day = self._day(request.date)
        verdict = await self._verifier.verify(day, request.repair, who)
        return admin_pb2.VerifyQuotaResponse(
            quota=_quota(await self._quota.state(day)),
            used_before=verdict.used_before,
            bookings_applied=verdict.bookings_applied,
            in_flight=verdict.in_flight,
            consistent=not verdict.problems,
            repaired=verdict.repaired,
            problems=verdict.problems,
        )
