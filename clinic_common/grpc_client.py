"""Dialing internal services: one address as is, several spread by round_robin."""

from __future__ import annotations

import json
from collections.abc import Sequence

import grpc

ROUND_ROBIN = {"loadBalancingConfig": [{"round_robin": {}}]}


def channel_target(addrs: Sequence[str]) -> str:
    return addrs[0] if len(addrs) == 1 else "ipv4:" + ",".join(addrs)


def open_channel(addrs: Sequence[str], service_config: dict | None = None, options=()) -> grpc.aio.Channel:
    config = json.dumps(service_config or ROUND_ROBIN)
    return grpc.aio.insecure_channel(
        channel_target(addrs), options=[("grpc.service_config", config), *options]
    )
