"""clinic.v1.FrontDeskService: thin gRPC handlers over the use cases."""

from __future__ import annotations

from clinic.v1 import frontdesk_pb2, frontdesk_pb2_grpc
from clinic_common import rpc

from .usecases import FrontDesk


class FrontDeskServicer(frontdesk_pb2_grpc.FrontDeskServiceServicer):
    def __init__(self, desk: FrontDesk) -> None:
        self._desk = desk

    @rpc.unary
    async def CheckIn(self, request, context, who):
        return frontdesk_pb2.CheckInResponse(visit=await self._desk.check_in(request.booking_id, who))

    @rpc.unary
    async def GetQueue(self, request, context, who):
        sequence, visits = await self._desk.queue(request.doctor_id, request.date, who)
        return frontdesk_pb2.GetQueueResponse(visits=visits, sequence=sequence)

    @rpc.server_stream
    async def WatchQueue(self, request, context, who):
        # No `except CancelledError` here: a client going away cancels this generator, the watch
        # cleans up in its `finally`, and the cancellation propagates (grpc#43360).
        async for item in self._desk.watch(request.doctor_id, request.date, request.after_sequence, who):
            if isinstance(item, frontdesk_pb2.QueueSnapshot):
                yield frontdesk_pb2.WatchQueueResponse(snapshot=item, sequence=item.sequence)
            else:
                yield frontdesk_pb2.WatchQueueResponse(change=item, sequence=item.sequence)

    @rpc.unary
    async def CallNext(self, request, context, who):
        return frontdesk_pb2.CallNextResponse(
            visit=await self._desk.call_next(request.doctor_id, request.date, who)
        )

    @rpc.unary
    async def CompleteVisit(self, request, context, who):
        return frontdesk_pb2.CompleteVisitResponse(visit=await self._desk.complete(request.booking_id, who))

    @rpc.unary
    async def MarkNoShow(self, request, context, who):
        return frontdesk_pb2.MarkNoShowResponse(visit=await self._desk.no_show(request.booking_id, who))
