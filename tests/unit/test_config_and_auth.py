"""Configuration fails with one clear line; logs carry no health data.

Tokens are checked by the edge: tests/integration/test_security.py and test_edge.py.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import tempfile
from contextlib import redirect_stderr
from pathlib import Path

import pytest

from clinic_common import tls
from clinic_common.config import ConfigError
from discount_svc.config import DiscountConfig
from gateway.config import GatewayConfig

SECRET = "unit-test-secret-0123456789abcdefghij"


def test_contract_defaults():
    config = DiscountConfig.from_env({})
    assert config.daily_quota == 100
    assert config.rules.percent == 12
    assert config.rules.high_value_threshold_minor == 100_000
    assert config.rules.blocked_patient_ids == {"fail_test_user"}
    assert str(config.timezone) == "Asia/Kolkata"
    assert GatewayConfig.from_env({"CLINIC_JWT_SECRET": SECRET, **dev_pki()}).addr == "127.0.0.1:50051"


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"DAILY_DISCOUNT_QUOTA": "abc"}, "DAILY_DISCOUNT_QUOTA"),
        ({"DISCOUNT_PERCENT": "101"}, "DISCOUNT_PERCENT"),
        ({"CLINIC_TIMEZONE": "Mars/Base"}, "CLINIC_TIMEZONE"),
        ({"NATS_URL": "http://x"}, "NATS_URL"),
        ({"DISCOUNT_SVC_ADDR": "nowhere"}, "DISCOUNT_SVC_ADDR"),
    ],
)
def test_bad_configuration_names_the_variable(env, variable):
    with pytest.raises(ConfigError) as caught:
        DiscountConfig.from_env(env)
    assert variable in str(caught.value)


def dev_pki() -> dict[str, str]:
    """Internal TLS files, which the edge needs as every service does (unless CLINIC_AUTH=none)."""
    return tls.ensure_dev_pki(Path(tempfile.mkdtemp(prefix="unit-pki-")))


def test_the_edge_needs_internal_tls_unless_auth_is_off():
    with pytest.raises(ConfigError, match="internal services need mutual TLS"):
        GatewayConfig.from_env({"CLINIC_JWT_SECRET": SECRET})
    assert GatewayConfig.from_env({"CLINIC_AUTH": "none"}).internal_tls is None


def test_gateway_needs_a_secret_unless_auth_is_off():
    with pytest.raises(ConfigError, match="CLINIC_JWT_SECRET"):
        GatewayConfig.from_env({})
    with pytest.raises(ConfigError, match="CLINIC_AUTH"):
        GatewayConfig.from_env({"CLINIC_AUTH": "maybe"})
    assert GatewayConfig.from_env({"CLINIC_AUTH": "none"}).auth == "none"


def test_a_service_with_bad_config_exits_with_one_line_and_no_traceback():
    done = subprocess.run(
        [sys.executable, "-m", "discount_svc"],
        env={"DAILY_DISCOUNT_QUOTA": "abc", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "DAILY_DISCOUNT_QUOTA" in lines[0]
    assert "Traceback" not in done.stderr


def test_logs_never_carry_names_or_birth_dates():
    from clinic_common import logs

    buffer = io.StringIO()
    with redirect_stderr(buffer):
        logs.configure("unit")
        logs.get_logger("t").info("booking.created", patient_id="p1", name="Asha", date_of_birth="1990-01-01")
    line = json.loads(buffer.getvalue().strip().splitlines()[-1])
    assert line["patient_id"] == "p1"
    assert "Asha" not in buffer.getvalue() and "1990-01-01" not in buffer.getvalue()


@pytest.mark.parametrize(
    ("details", "says"),
    [
        ("failed to connect to all addresses; last error: ECONNREFUSED", "cannot reach the gateway at gw:1"),
        (
            "booking_svc unavailable: upstream connect error or disconnect/reset before headers",
            "UNAVAILABLE: booking_svc unavailable: upstream connect error",
        ),
    ],
)
def test_the_cli_tells_a_down_gateway_from_a_down_backend(details, says):
    import grpc

    from clinic_cli.client import describe

    err = grpc.aio.AioRpcError(grpc.StatusCode.UNAVAILABLE, grpc.aio.Metadata(), grpc.aio.Metadata(), details)
    assert str(describe(err, "gw:1")).startswith(says)
