"""clinic.v1.NotificationService: server-streaming watches over the event hub and the stream."""

from __future__ import annotations

from nats.js import JetStreamContext

from clinic.v1 import common_pb2, notification_pb2, notification_pb2_grpc
from clinic_common import rpc
from clinic_common.errors import InvalidArgument
from clinic_common.validate import MAX_ID_LEN, PATIENT_ID, full

from . import watch
from .hub import EventHub
from .limits import OpenStreams
from .store import NotificationStore


def _require_id(field: str, value: str) -> None:
    # No dots: a dot would split the id into two subject tokens where it is matched on the bus.
    if not value or len(value) > MAX_ID_LEN or not full(PATIENT_ID, value) or "." in value:
        raise InvalidArgument([(field, "must be an id of at most 64 characters")])


class NotificationServicer(notification_pb2_grpc.NotificationServiceServicer):
    def __init__(
        self,
        hub: EventHub,
        js: JetStreamContext,
        streams: OpenStreams | None = None,
        store: NotificationStore | None = None,
    ) -> None:
        self._hub = hub
        self._js = js
        self._streams = streams or OpenStreams()
        self._store = store

    @rpc.server_stream
    async def WatchBooking(self, request, context, who):
        _require_id("booking_id", request.booking_id)
        with self._streams.hold(who):
            async for event in watch.watch_booking(
                self._hub, self._js, request.booking_id, request.follow, who.require_patient_access
            ):
                yield notification_pb2.WatchBookingResponse(event=event)

    @rpc.server_stream
    async def WatchPatient(self, request, context, who):
        _require_id("patient_id", request.patient_id)
        who.require_patient_access(request.patient_id)

        async def live() -> None:
            # Initial metadata tells the client the watch is registered: events from here on arrive.
            await context.send_initial_metadata((("x-clinic-watch", "live"),))

        with self._streams.hold(who):
            async for item in watch.watch_patient(self._hub, request.patient_id, on_live=live):
                if isinstance(item, common_pb2.BookingEvent):
                    yield notification_pb2.WatchPatientResponse(event=item)
                else:
                    yield notification_pb2.WatchPatientResponse(visit=item)

    @rpc.unary
    async def ListDeliveries(self, request, context, who):
        _require_id("booking_id", request.booking_id)
        found = await self._store.deliveries(request.booking_id)
        if found is None:  # nothing sent (yet), or no such booking: the same answer for everyone
            return notification_pb2.ListDeliveriesResponse()
        patient_id, deliveries = found
        who.require_patient_access(patient_id)
        return notification_pb2.ListDeliveriesResponse(deliveries=deliveries)
