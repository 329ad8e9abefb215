"""Who is calling: HS256 JWTs (`authorization: Bearer ...`), or nobody checked with CLINIC_AUTH=none."""

from __future__ import annotations

import re
import time
from collections.abc import Iterable

import grpc
import jwt

from clinic_common.errors import ClinicError
from clinic_common.principal import ANONYMOUS_ADMIN, ROLES, Principal

MAX_TOKEN_LEN = 4096
# The subject travels on as gRPC metadata and names a patient: the same shape as a patient id.
SUBJECT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@:-]{0,63}$")


class Unauthenticated(ClinicError):
    code = grpc.StatusCode.UNAUTHENTICATED


class NoAuth:
    """Local development only: every caller is an admin (logged as a warning at start)."""

    def authenticate(self, metadata: Iterable[tuple[str, str | bytes]]) -> Principal:
        return ANONYMOUS_ADMIN


class JwtAuth:
    """Verifies HS256 tokens; a verified token is remembered (until its exp) to skip the HMAC."""

    CACHE_SIZE = 10_000

    def __init__(self, secret: str) -> None:
        self._secret = secret
        self._verified: dict[str, tuple[Principal, float]] = {}

    def authenticate(self, metadata: Iterable[tuple[str, str | bytes]]) -> Principal:
        header = next((v for k, v in metadata if k == "authorization" and isinstance(v, str)), None)
        if not header:
            raise Unauthenticated("missing authorization: Bearer <token>")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token or len(token) > MAX_TOKEN_LEN:
            raise Unauthenticated("authorization must be 'Bearer <token>'")
        cached = self._verified.get(token)
        if cached is not None and cached[1] > time.time():
            return cached[0]
        who, exp = self._verify(token)
        if len(self._verified) >= self.CACHE_SIZE:
            self._verified.clear()
        self._verified[token] = (who, exp)
        return who

    def _verify(self, token: str) -> tuple[Principal, float]:
        try:
            claims = jwt.decode(
                token.strip(),
                self._secret,
                algorithms=["HS256"],  # never "none", never whatever the token's header claims
                options={"require": ["exp", "sub", "role"]},
            )
        except jwt.ExpiredSignatureError:
            raise Unauthenticated("token expired") from None
        except jwt.InvalidTokenError as exc:
            raise Unauthenticated(f"invalid token: {type(exc).__name__}") from None
        sub, role = claims.get("sub"), claims.get("role")
        if not isinstance(sub, str) or not SUBJECT.match(sub):
            raise Unauthenticated("token 'sub' must be an id of letters, digits or ._@:- (at most 64)")
        if role not in ROLES:
            raise Unauthenticated("token 'role' must be 'patient', 'staff' or 'admin'")
        return Principal(sub=sub, role=role), float(claims["exp"])


def mint(secret: str, sub: str, role: str, ttl_s: int = 12 * 3600) -> str:
    if role not in ROLES:
        raise ValueError(f"role must be one of {ROLES}")
    now = int(time.time())
    return jwt.encode({"sub": sub, "role": role, "iat": now, "exp": now + ttl_s}, secret, algorithm="HS256")
