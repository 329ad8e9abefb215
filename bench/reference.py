"""The reference pipeline: the saga's hops with no business logic, as separate processes.

    client --unary Submit--> front --JetStream publish ref.req.<id>-->
    worker-a (pull consumer; Redis Lua INCR; JetStream publish ref.mid.<id>) -->
    worker-b (pull consumer; JetStream publish ref.final.<id>) -->
    front (core NATS subscription ref.final.*) --server-streaming Watch--> client

Same transports and the same settings as the services (grpc.aio on uvloop, JetStream file storage
with de-duplication ids and acks awaited, pull consumers fetching 128 with a 1 s timeout and
processing a batch concurrently, explicit acks, an EVALSHA'd script on valkey with AOF), so its
throughput is what this machine can do at all through these hops. The front registers the booking's
future before publishing, so the final message can never arrive before anyone waits for it.

Run by the benchmark as `python -m bench.reference {front,worker-a,worker-b}`; configured by
REF_NATS_URL, REF_REDIS_URL and REF_ADDR.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import nats
import redis.asyncio as aioredis
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from nats.js import api as js_api
from nats.js.errors import BadRequestError, NotFoundError

from clinic_common import redis_io
from clinic_common.nats_io import JetStreamPublisher
from clinic_common.nats_pull import Puller
from clinic_tools import embedded

from .launcher import ROOT, Subprocesses
from .load import CHANNEL_OPTIONS, CHANNELS

STREAM = "REF"
REQ, MID, FINAL = "ref.req", "ref.mid", "ref.final"
SERVICE = "bench.Reference"
SUBMIT = f"/{SERVICE}/Submit"
WATCH = f"/{SERVICE}/Watch"
FETCH_BATCH = 128
FETCH_TIMEOUT_S = 1.0
CALL_TIMEOUT_S = 60.0
ROLES = ("front", "worker-a", "worker-b")


# -- the processes ---------------------------------------------------------------------------------


async def _connect() -> tuple[nats.aio.client.Client, object]:
    nc = await nats.connect(os.environ["REF_NATS_URL"], name="bench-reference", pending_size=64 * 1024 * 1024)
    js = nc.jetstream(timeout=5.0)
    config = js_api.StreamConfig(
        name=STREAM,
        subjects=["ref.>"],
        storage=js_api.StorageType.FILE,
        retention=js_api.RetentionPolicy.LIMITS,
        duplicate_window=120.0,
        num_replicas=1,
        allow_direct=True,
    )
    try:
        await js.add_stream(config)
    except BadRequestError as exc:
        if exc.err_code != 10058:
            raise
    return nc, js


def _stop_event() -> asyncio.Event:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    return stop


async def run_front() -> None:
    stop = _stop_event()
    nc, _js = await _connect()
    publisher = JetStreamPublisher(nc)  # the services' JetStream publish
    loop = asyncio.get_running_loop()
    waiting: dict[str, asyncio.Future] = {}

    async def on_final(msg) -> None:
        fut = waiting.get(msg.subject.rpartition(".")[2])
        if fut is not None and not fut.done():
            fut.set_result(msg.data)

    sub = await nc.subscribe(f"{FINAL}.*", cb=on_final)

    async def submit(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        booking_id = uuid.uuid4().hex
        waiting[booking_id] = loop.create_future()
        await publisher.publish(f"{REQ}.{booking_id}", request, {"Nats-Msg-Id": booking_id}, 2.0)
        return booking_id.encode()

    async def watch(request: bytes, context: grpc.aio.ServicerContext):
        booking_id = request.decode()
        fut = waiting.get(booking_id)
        if fut is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, "unknown id")
        try:
            yield await asyncio.wait_for(fut, CALL_TIMEOUT_S)
        finally:
            waiting.pop(booking_id, None)

    server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
    server.add_generic_rpc_handlers(
        [
            grpc.method_handlers_generic_handler(
                SERVICE,
                {
                    "Submit": grpc.unary_unary_rpc_method_handler(submit),
                    "Watch": grpc.unary_stream_rpc_method_handler(watch),
                },
            )
        ]
    )
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    server.add_insecure_port(os.environ["REF_ADDR"])
    await server.start()
    await health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    await stop.wait()
    await server.stop(1.0)
    await sub.unsubscribe()
    await nc.close()


async def run_worker(role: str) -> None:
    stop = _stop_event()
    nc, js = await _connect()
    durable, source = ("ref-a", REQ) if role == "worker-a" else ("ref-b", MID)
    await js.add_consumer(
        STREAM,
        js_api.ConsumerConfig(
            durable_name=durable,
            deliver_policy=js_api.DeliverPolicy.ALL,
            ack_policy=js_api.AckPolicy.EXPLICIT,
            ack_wait=10.0,
            max_deliver=10,
            max_ack_pending=2000,
            filter_subjects=[f"{source}.*"],
        ),
    )
    puller = await Puller(nc, STREAM, durable).start()
    publisher = JetStreamPublisher(nc)
    redis = None
    if role == "worker-a":
        pool = aioredis.BlockingConnectionPool.from_url(os.environ["REF_REDIS_URL"], max_connections=64)
        redis = aioredis.Redis(connection_pool=pool)
        incr = redis_io.batched_script(redis, "return redis.call('INCR', KEYS[1])")

    async def handle(msg) -> None:
        booking_id = msg.subject.rpartition(".")[2]
        if redis is not None:
            await incr(keys=["ref:count"])
            await publisher.publish(f"{MID}.{booking_id}", msg.data, {"Nats-Msg-Id": f"{booking_id}:m"}, 2.0)
        else:
            final_id = {"Nats-Msg-Id": f"{booking_id}:f"}
            await publisher.publish(f"{FINAL}.{booking_id}", b"final", final_id, 2.0)

    async def handle_batch(msgs) -> None:
        await asyncio.gather(*(handle(m) for m in msgs))
        await puller.ack_all(msgs)  # one write and one flush for the batch's acks

    running: set[asyncio.Task] = set()
    while not stop.is_set():
        try:
            msgs = await puller.fetch(FETCH_BATCH, FETCH_TIMEOUT_S)
        except TimeoutError:
            continue
        # the next fetch goes out at once: no batch waits for the one before it
        task = asyncio.ensure_future(handle_batch(msgs))
        running.add(task)
        task.add_done_callback(running.discard)
    if running:
        await asyncio.wait(running)
    await puller.stop()
    if redis is not None:
        await redis.aclose()
    await nc.close()


def main(argv: list[str]) -> None:
    import uvloop

    role = argv[0] if argv else ""
    if role not in ROLES:
        raise SystemExit(f"usage: python -m bench.reference {{{','.join(ROLES)}}}")
    uvloop.run(run_front() if role == "front" else run_worker(role))


# -- launching it ----------------------------------------------------------------------------------


@dataclass
class ReferenceStack:
    """Its own nats-server and valkey (same flags as the system's, no auth) and the three processes."""

    data_dir: Path
    nats_port: int = field(default_factory=embedded.free_port)
    monitor_port: int = field(default_factory=embedded.free_port)
    redis_port: int = field(default_factory=embedded.free_port)
    front_port: int = field(default_factory=embedded.free_port)
    nats: embedded.EmbeddedServer | None = None
    redis: embedded.EmbeddedServer | None = None
    procs: Subprocesses = field(default_factory=Subprocesses)

    @property
    def addr(self) -> str:
        return f"127.0.0.1:{self.front_port}"

    @property
    def nats_url(self) -> str:
        return f"nats://127.0.0.1:{self.nats_port}"

    def pids(self) -> dict[str, int]:
        out = {f"ref-{name}": proc.pid for name, proc in self.procs.procs.items()}
        out["nats-server"] = self.nats.process.pid
        out["valkey"] = self.redis.process.pid
        return out

    async def start(self) -> ReferenceStack:
        self.nats = embedded.nats_server(self.data_dir, self.nats_port, self.monitor_port).start()
        self.redis = embedded.redis_server(self.data_dir, self.redis_port).start()
        env = dict(
            os.environ,
            REF_NATS_URL=self.nats_url,
            REF_REDIS_URL=f"redis://127.0.0.1:{self.redis_port}/0",
            REF_ADDR=self.addr,
            PYTHONPATH=str(ROOT),
        )
        logs = self.data_dir / "logs"
        for role in ROLES:
            args = [sys.executable, "-m", "bench.reference", role]
            self.procs.popen(role, args, env, logs / f"ref-{role}.log")
        await self.procs.wait_healthy("front", self.addr)
        await self._wait_consumers()
        return self

    async def _wait_consumers(self, timeout_s: float = 30.0) -> None:
        """Ready when both workers' durable consumers exist (their fetch loops start right after)."""
        nc = await nats.connect(self.nats_url, name="bench-launcher")
        try:
            js = nc.jetstream(timeout=2.0)
            loop = asyncio.get_running_loop()
            deadline = loop.time() + timeout_s
            for durable, role in (("ref-a", "worker-a"), ("ref-b", "worker-b")):
                while True:
                    try:
                        await js.consumer_info(STREAM, durable)
                        break
                    except NotFoundError:
                        pass
                    if self.procs.procs[role].poll() is not None or loop.time() > deadline:
                        raise RuntimeError(f"reference {role} did not start (see {self.data_dir}/logs)")
                    await asyncio.sleep(0.05)
        finally:
            await nc.close()

    def stop(self) -> None:
        self.procs.stop()
        for server in (self.nats, self.redis):
            if server is not None:
                server.stop()


class ReferenceTarget:
    """The client side: Submit, then Watch until the stream ends (same channel count as the system's)."""

    def __init__(self, addr: str, *, channels: int = CHANNELS) -> None:
        self._addr = addr
        self._channel_count = channels
        self._channels: list[grpc.aio.Channel] = []
        self._calls: list[tuple[object, object]] = []
        self._counter = itertools.count()
        self._payload = b"x" * 96  # about the size of a CreateBookingRequest

    async def open(self) -> None:
        for _ in range(self._channel_count):
            channel = grpc.aio.insecure_channel(self._addr, options=CHANNEL_OPTIONS)
            await channel.channel_ready()
            self._channels.append(channel)
            self._calls.append((channel.unary_unary(SUBMIT), channel.unary_stream(WATCH)))

    async def close(self) -> None:
        for channel in self._channels:
            await channel.close()

    async def saga(self) -> str:
        submit, watch = self._calls[next(self._counter) % len(self._calls)]
        booking_id = await submit(self._payload, timeout=CALL_TIMEOUT_S)
        last = b""
        async for item in watch(booking_id, timeout=CALL_TIMEOUT_S):
            last = item
        return "FINAL" if last == b"final" else "MISSING"


if __name__ == "__main__":
    main(sys.argv[1:])
