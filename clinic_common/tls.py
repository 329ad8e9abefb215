"""Mutual TLS between the edge and the internal services, and the identity it makes trustworthy.

An internal service serves TLS and accepts only clients whose certificate the CA signed
(CLINIC_INTERNAL_TLS_CERT / _KEY / _CA); the edge (gateway or Envoy) and services calling each other
present a certificate from the same CA and verify the server's. Certificates name the
`clinic-internal` host (CLINIC_INTERNAL_TLS_NAME), so addresses can be anything. The caller's
identity (x-clinic-sub / x-clinic-role) is believed only on such a connection: without internal TLS
a service refuses to start unless CLINIC_AUTH=none declares a local-development machine.

`ensure_dev_pki` makes a development CA and certificate under the data directory (`make run`, the
tests, docker-compose's `pki` step); production brings its own files.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import sys
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from clinic_common.config import ConfigError

DEFAULT_NAME = "clinic-internal"
VARS = ("CLINIC_INTERNAL_TLS_CERT", "CLINIC_INTERNAL_TLS_KEY", "CLINIC_INTERNAL_TLS_CA")
DEV_VALID_DAYS = 365


@dataclass(frozen=True)
class InternalTls:
    cert: bytes
    key: bytes
    ca: bytes
    name: str

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> InternalTls | None:
        """The configured files, read and checked (one ConfigError line when they are not usable)."""
        env = os.environ if env is None else env
        paths = [env.get(n, "").strip() for n in VARS]
        if not any(paths):
            return None
        if not all(paths):
            raise ConfigError(f"set all of {', '.join(VARS)} for internal mutual TLS, or none")
        blobs = []
        for name, path in zip(VARS, paths, strict=True):
            try:
                blobs.append(Path(path).read_bytes())
            except OSError as exc:
                raise ConfigError(f"{name}={path!r} cannot be read: {exc.strerror}") from None
        tls = cls(*blobs, name=env.get("CLINIC_INTERNAL_TLS_NAME", "").strip() or DEFAULT_NAME)
        tls._check(dict(zip(VARS, paths, strict=True)))
        return tls

    def _check(self, paths: dict[str, str]) -> None:
        """grpc reports bad PEM only at the first handshake, as a generic failure: check at start."""
        cert_var, key_var, ca_var = VARS
        cert = _load(cert_var, paths[cert_var], x509.load_pem_x509_certificate, self.cert)
        _load(ca_var, paths[ca_var], x509.load_pem_x509_certificates, self.ca)
        key = _load(key_var, paths[key_var], lambda b: serialization.load_pem_private_key(b, None), self.key)
        if cert.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        ) != key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        ):
            raise ConfigError(
                f"{key_var}={paths[key_var]!r} is not the key of {cert_var}={paths[cert_var]!r}"
            )

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


def _load(var: str, path: str, parse, blob: bytes):
    try:
        return parse(blob)
    except (ValueError, TypeError) as exc:
        reason = str(exc).split("\n")[0][:120] or type(exc).__name__
        what = {"CERT": "certificate", "KEY": "private key", "CA": "CA certificate"}[var.rsplit("_", 1)[1]]
        raise ConfigError(f"{var}={path!r} is not a PEM {what}: {reason}") from None


def development_mode(env: Mapping[str, str] | None = None) -> bool:
    """CLINIC_AUTH=none: the operator has declared a local-development machine."""
    env = os.environ if env is None else env
    return env.get("CLINIC_AUTH", "").strip() == "none"


def required_from_env(env: Mapping[str, str] | None = None) -> InternalTls | None:
    """Internal TLS, which every process needs; None only on a declared development machine."""
    env = os.environ if env is None else env
    tls = InternalTls.from_env(env)
    if tls is None and not development_mode(env):
        raise ConfigError(
            f"internal services need mutual TLS: set {', '.join(VARS)} (make run makes development ones), "
            "or CLINIC_AUTH=none on a local development machine"
        )
    return tls


def server_credentials_from_env() -> grpc.ServerCredentials | None:
    """An internal service's credentials: mutual TLS; None (plaintext) only on a development machine."""
    tls = required_from_env()
    return tls.server_credentials() if tls else None


def ssl_server_context(env: Mapping[str, str] | None = None):
    """An HTTPS server's side of internal mutual TLS (fhir_svc): only CA-signed clients get in.

    None on a declared development machine without internal TLS (plaintext, as for gRPC)."""
    import ssl

    env = os.environ if env is None else env
    if required_from_env(env) is None:
        return None
    cert, key, ca = (env[n].strip() for n in VARS)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=ca)
    context.load_cert_chain(cert, key)
    context.verify_mode = ssl.CERT_REQUIRED
    return context


def ssl_client_context(env: Mapping[str, str] | None = None):
    """A client's side of internal mutual TLS over HTTPS (readiness probes): the CA and our certificate.

    The server's name is the internal one (CLINIC_INTERNAL_TLS_NAME), not its address: pass it as
    `server_hostname`."""
    import ssl

    env = os.environ if env is None else env
    if InternalTls.from_env(env) is None:
        return None
    cert, key, ca = (env[n].strip() for n in VARS)
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=ca)
    context.load_cert_chain(cert, key)
    return context


def channel(addr: str, tls: InternalTls | None) -> grpc.Channel:
    """A blocking channel to one internal service (health probes, tests)."""
    if tls is None:
        return grpc.insecure_channel(addr)
    return grpc.secure_channel(addr, tls.channel_credentials(), options=tls.channel_options())


# -- development PKI -------------------------------------------------------------------------------


def ensure_dev_pki(data_dir: Path | str, name: str = DEFAULT_NAME) -> dict[str, str]:
    """A development CA and one certificate for `name` under data_dir/pki, made once and reused.

    Returns the CLINIC_INTERNAL_TLS_* variables that point at them. The certificate serves and
    authenticates (server and client use), so every process of a development system shares it.
    """
    pki = Path(data_dir) / "pki"
    paths = {
        var: pki / file for var, file in zip(VARS, ("internal.pem", "internal.key", "ca.pem"), strict=True)
    }
    env = {var: str(path) for var, path in paths.items()} | {"CLINIC_INTERNAL_TLS_NAME": name}
    if all(p.exists() for p in paths.values()) and _still_valid(paths[VARS[0]]):
        return env
    pki.mkdir(parents=True, exist_ok=True)
    pki.chmod(0o700)
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "clinic development CA")])
    ca = (
        _builder(ca_name, ca_name, ca_key, now)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(*[False] * 5, True, True, False, False), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        _builder(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]), ca_name, key, now)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.DNSName(name),
                    x509.DNSName("localhost"),
                    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                ]
            ),
            critical=False,
        )
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    key_pem = key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    _write(paths[VARS[1]], key_pem, 0o600)
    _write(paths[VARS[0]], leaf.public_bytes(pem), 0o644)
    _write(paths[VARS[2]], ca.public_bytes(pem), 0o644)
    return env


def _builder(subject: x509.Name, issuer: x509.Name, key, now: datetime.datetime) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=DEV_VALID_DAYS))
    )


def _still_valid(cert_path: Path) -> bool:
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    except (OSError, ValueError):
        return False
    return cert.not_valid_after_utc - datetime.datetime.now(datetime.UTC) > datetime.timedelta(days=1)


def _write(path: Path, data: bytes, mode: int) -> None:
    """Write beside, then rename: processes (or threads) starting at the same time never read half a
    file, nor take each other's temporary one."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}")
    tmp.write_bytes(data)
    tmp.chmod(mode)
    tmp.replace(path)


if __name__ == "__main__":  # docker-compose's pki step: python -m clinic_common.tls /pki-dir
    for var, value in ensure_dev_pki(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("var")).items():
        print(f"{var}={value}")
