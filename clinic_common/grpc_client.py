"""Dialing internal services: one address as is, several spread by round_robin."""

from __future__ import annotations

import json
from collections.abc import Sequence

import grpc

from clinic_common.tls import InternalTls

ROUND_ROBIN = {"loadBalancingConfig": [{"round_robin": {}}]}


def channel_target(addrs: Sequence[str]) -> str:
    return addrs[0] if len(addrs) == 1 else "ipv4:" + ",".join(addrs)


def open_channel(
    addrs: Sequence[str], service_config: dict | None = None, options=(), tls: InternalTls | None = None
) -> grpc.aio.Channel:
    """A channel to an internal service; with `tls`, mutual TLS (see clinic_common.tls)."""
    opts = [("grpc.service_config", json.dumps(service_config or ROUND_ROBIN)), *options]
    if tls is None:
        return grpc.aio.insecure_channel(channel_target(addrs), options=opts)
    return grpc.aio.secure_channel(
        channel_target(addrs), tls.channel_credentials(), options=[*opts, *tls.channel_options()]
    )
