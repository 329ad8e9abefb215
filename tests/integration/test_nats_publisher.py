"""The lean JetStream publisher (clinic_common.nats_io) against the real nats-server: acknowledged
and de-duplicated like nats-py's js.publish, and failing the same ways."""

from __future__ import annotations

import asyncio
import time
import uuid

import nats
import pytest
from nats.js import api as js_api

from clinic_common import nats_io
from clinic_common.errors import Unavailable


@pytest.fixture
async def js(servers):
    nc = await nats.connect(servers.nats_url)
    js = nc.jetstream()
    stream = f"PUBTEST_{uuid.uuid4().hex[:8]}"
    await js.add_stream(
        js_api.StreamConfig(name=stream, subjects=[f"{stream.lower()}.>"], duplicate_window=60)
    )
    js.test_stream = stream
    yield js
    await js.delete_stream(stream)
    await nc.close()


async def test_many_concurrent_publishes_are_stored_once_each(js):
    subject = f"{js.test_stream.lower()}.x"
    ids = [f"m{i}" for i in range(200)] * 2  # every message twice: JetStream keeps one of each

    await asyncio.gather(*(nats_io.publish(js, subject, i.encode(), i) for i in ids))

    info = await js.stream_info(js.test_stream)
    assert info.state.messages == 200
    stored = {(await js.get_msg(js.test_stream, seq)).data for seq in range(1, 201)}
    assert stored == {f"m{i}".encode() for i in range(200)}


async def test_a_subject_no_stream_listens_on_is_unavailable(js):
    with pytest.raises(Unavailable, match="nostream"):
        await nats_io.publish(js, f"nostream.{uuid.uuid4().hex}", b"x", "id", attempts=2)


async def test_a_jetstream_error_reaches_the_caller(js):
    subject = f"{js.test_stream.lower()}.x"
    with pytest.raises(nats.js.errors.APIError) as caught:
        # The stream's own answer: the expected last sequence does not match (err_code 10071).
        await nats_io.publish(js, subject, b"x", "id", headers={"Nats-Expected-Last-Sequence": "999"})
    assert caught.value.err_code == 10071


async def test_an_unanswered_publish_times_out(js):
    nc = js._nc
    silent = await nc.subscribe(f"silent.{uuid.uuid4().hex}")  # listens, never answers
    publisher = nats_io.JetStreamPublisher(nc)
    started = time.monotonic()
    with pytest.raises(nats.errors.TimeoutError):
        await publisher.publish(silent.subject, b"x", {"Nats-Msg-Id": "t"}, wait_s=0.3)
    assert 0.25 < time.monotonic() - started < 2.0
    await silent.unsubscribe()
