"""Tokens for the edge: HS256 JWTs with `sub`, `role` and `exp`.

Envoy verifies them (gateway/envoy.py: jwt_authn, then RBAC on the role and the subject's shape);
`mint` makes them for `make run`, the `clinic` command, the tests and the benchmark.
"""

from __future__ import annotations

import re
import time

import jwt

from clinic_common.principal import ROLES

# The subject travels on as gRPC metadata and names a patient: the same shape as a patient id.
SUBJECT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@:-]{0,63}$")


def mint(secret: str, sub: str, role: str, ttl_s: int = 12 * 3600) -> str:
    if role not in ROLES:
        raise ValueError(f"role must be one of {ROLES}")
    now = int(time.time())
    return jwt.encode({"sub": sub, "role": role, "iat": now, "exp": now + ttl_s}, secret, algorithm="HS256")
