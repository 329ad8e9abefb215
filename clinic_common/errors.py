"""The domain's small exception hierarchy and its one mapping onto gRPC status codes."""

from __future__ import annotations

from collections.abc import Iterable

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status


class ClinicError(Exception):
    code = grpc.StatusCode.INTERNAL


class InvalidArgument(ClinicError):
    code = grpc.StatusCode.INVALID_ARGUMENT

    def __init__(self, violations: Iterable[tuple[str, str]]) -> None:
        self.violations = list(violations)
        fields = ", ".join(field for field, _ in self.violations)
        super().__init__(f"invalid request: {fields}")


class NotFound(ClinicError):
    code = grpc.StatusCode.NOT_FOUND


class AlreadyExists(ClinicError):
    code = grpc.StatusCode.ALREADY_EXISTS


class FailedPrecondition(ClinicError):
    code = grpc.StatusCode.FAILED_PRECONDITION


class Unauthenticated(ClinicError):
    code = grpc.StatusCode.UNAUTHENTICATED


class PermissionDenied(ClinicError):
    code = grpc.StatusCode.PERMISSION_DENIED


class ResourceExhausted(ClinicError):
    code = grpc.StatusCode.RESOURCE_EXHAUSTED

    def __init__(self, message: str, retry_after_s: float = 0.0) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class Unavailable(ClinicError):
    """A dependency (NATS, Redis, another service) is down; the message says which."""

    code = grpc.StatusCode.UNAVAILABLE


class Conflict(ClinicError):
    """A compare-and-set lost a race; the caller reloads and tries again."""

    code = grpc.StatusCode.ABORTED


def to_status(exc: ClinicError) -> grpc.Status:
    status = status_pb2.Status(code=getattr(code_pb2, exc.code.name), message=str(exc))
    if isinstance(exc, InvalidArgument):
        detail = error_details_pb2.BadRequest(
            field_violations=[
                error_details_pb2.BadRequest.FieldViolation(field=field, description=description)
                for field, description in exc.violations
            ]
        )
        packed = any_pb2.Any()
        packed.Pack(detail)
        status.details.append(packed)
    if isinstance(exc, ResourceExhausted) and exc.retry_after_s > 0:
        status.details.append(retry_info(exc.retry_after_s))
    return rpc_status.to_status(status)


def retry_info(seconds: float) -> any_pb2.Any:
    """A google.rpc.RetryInfo detail: how long a client should wait before trying again."""
    delay = duration_pb2.Duration(seconds=int(seconds), nanos=int(seconds % 1 * 1e9))
    packed = any_pb2.Any()
    packed.Pack(error_details_pb2.RetryInfo(retry_delay=delay))
    return packed


def bad_request_violations(error: grpc.RpcError) -> list[tuple[str, str]]:
    """(field, description) of every violation in an INVALID_ARGUMENT's BadRequest detail."""
    status = rpc_status.from_call(error)
    found: list[tuple[str, str]] = []
    for detail in status.details if status else []:
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            found.extend((v.field, v.description) for v in bad.field_violations)
    return found


def bad_request_fields(error: grpc.RpcError) -> list[str]:
    """The fields named by an INVALID_ARGUMENT's BadRequest detail (for clients and tests)."""
    return [field for field, _ in bad_request_violations(error)]
