"""Mutual TLS between the gateway and the internal services.

With CLINIC_INTERNAL_TLS_CERT / _KEY / _CA set, an internal service serves TLS and accepts only
clients whose certificate the CA signed; the gateway (and discount_svc, which reads bookings)
presents its own certificate and verifies the server's. Certificates name the
`clinic-internal` host (CLINIC_INTERNAL_TLS_NAME), so addresses can be anything.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import grpc

from clinic_common.config import ConfigError

DEFAULT_NAME = "clinic-internal"


@dataclass(frozen=True)
class InternalTls:
    cert: bytes
    key: bytes
    ca: bytes
    name: str

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> InternalTls | None:
        env = os.environ if env is None else env
        names = ("CLINIC_INTERNAL_TLS_CERT", "CLINIC_INTERNAL_TLS_KEY", "CLINIC_INTERNAL_TLS_CA")
        paths = [env.get(n, "").strip() for n in names]
        if not any(paths):
            return None
        if not all(paths):
            raise ConfigError(f"set all of {', '.join(names)} for internal mutual TLS, or none")
        blobs = []
        for name, path in zip(names, paths, strict=True):
            try:
                blobs.append(Path(path).read_bytes())
            except OSError as exc:
                raise ConfigError(f"{name}={path!r} cannot be read: {exc.strerror}") from None
        return cls(*blobs, name=env.get("CLINIC_INTERNAL_TLS_NAME", DEFAULT_NAME))

    def server_credentials(self) -> grpc.ServerCredentials:
        return grpc.ssl_server_credentials(
            [(self.key, self.cert)], root_certificates=self.ca, require_client_auth=True
        )

    def channel_credentials(self) -> grpc.ChannelCredentials:
        return grpc.ssl_channel_credentials(
            root_certificates=self.ca, private_key=self.key, certificate_chain=self.cert
        )

    def channel_options(self) -> list[tuple[str, str]]:
        return [("grpc.ssl_target_name_override", self.name)]


def server_credentials_from_env() -> grpc.ServerCredentials | None:
    """An internal service's credentials: mutual TLS when configured, else plaintext (None)."""
    tls = InternalTls.from_env()
    return tls.server_credentials() if tls else None
