"""gRPC server reflection for the whole public clinic.v1 API, resolving every kind of symbol.

grpcio-reflection asks the upb descriptor pool for the file containing a symbol, and the pool does
not resolve methods (grpc/grpc#34743: `grpcurl describe clinic.v1.BookingService.CreateBooking`
answers "Symbol not found"). Here every symbol of every public file (services, methods, messages,
fields, oneofs, enums and their values, nested ones too) is indexed to its file up front. The
servicer knows every public clinic.v1 file, not only the services of the process serving it, so an
edge that routes reflection to any one process (Envoy cannot merge reflection from several
upstreams) gets the whole API. It answers on grpc.reflection.v1 and v1alpha (same wire format).
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterable

import grpc
from google.protobuf.descriptor import Descriptor, EnumDescriptor, FileDescriptor
from grpc_health.v1 import health_pb2
from grpc_reflection.v1alpha import _async, reflection_pb2
from grpc_reflection.v1alpha._base import _file_descriptor_response

import clinic.v1

# The saga's NATS payloads: internal, not part of what clients call.
INTERNAL_FILES = frozenset({"clinic/v1/saga.proto"})
V1 = "grpc.reflection.v1.ServerReflection"
V1ALPHA = reflection_pb2.DESCRIPTOR.services_by_name["ServerReflection"].full_name


def public_files() -> list[FileDescriptor]:
    """Every clinic.v1 file that is part of the public API, found in the generated package."""
    files = []
    for module in pkgutil.iter_modules(clinic.v1.__path__):
        if module.name.endswith("_pb2"):
            descriptor = importlib.import_module(f"clinic.v1.{module.name}").DESCRIPTOR
            if descriptor.name not in INTERNAL_FILES:
                files.append(descriptor)
    return sorted(files, key=lambda f: f.name)


def public_service_names() -> list[str]:
    return [s.full_name for f in public_files() for s in f.services_by_name.values()]


def symbol_index(files: Iterable[FileDescriptor]) -> dict[str, FileDescriptor]:
    """Fully-qualified symbol -> the file that defines it."""
    index: dict[str, FileDescriptor] = {}

    def enum(e: EnumDescriptor, f: FileDescriptor) -> None:
        index[e.full_name] = f
        for value in e.values:  # named inside their enum, as grpcurl asks for them
            index[f"{e.full_name}.{value.name}"] = f

    def message(m: Descriptor, f: FileDescriptor) -> None:
        index[m.full_name] = f
        for part in (*m.fields, *m.oneofs, *m.extensions):
            index[part.full_name] = f
        for e in m.enum_types:
            enum(e, f)
        for nested in m.nested_types:
            message(nested, f)

    for f in files:
        for m in f.message_types_by_name.values():
            message(m, f)
        for e in f.enum_types_by_name.values():
            enum(e, f)
        for ext in f.extensions_by_name.values():
            index[ext.full_name] = f
        for service in f.services_by_name.values():
            index[service.full_name] = f
            for method in service.methods:
                index[method.full_name] = f
    return index


class ReflectionServicer(_async.ReflectionServicer):
    """grpcio-reflection's servicer with symbols resolved from the index first."""

    def __init__(self, service_names: Iterable[str], files: Iterable[FileDescriptor]) -> None:
        super().__init__(service_names)
        self._symbols = symbol_index(files)

    def _file_containing_symbol(self, request, fully_qualified_name):
        found = self._symbols.get(fully_qualified_name)
        if found is None:
            return super()._file_containing_symbol(request, fully_qualified_name)
        return _file_descriptor_response(found, request)


def add_to_server(server: grpc.aio.Server) -> None:
    """Serve reflection for the public API, grpc.health.v1 and reflection itself."""
    files = [*public_files(), health_pb2.DESCRIPTOR, reflection_pb2.DESCRIPTOR]
    servicer = ReflectionServicer([*public_service_names(), "grpc.health.v1.Health", V1, V1ALPHA], files)
    handler = grpc.stream_stream_rpc_method_handler(
        servicer.ServerReflectionInfo,
        request_deserializer=reflection_pb2.ServerReflectionRequest.FromString,
        response_serializer=reflection_pb2.ServerReflectionResponse.SerializeToString,
    )
    for name in (V1ALPHA, V1):
        server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler(name, {"ServerReflectionInfo": handler}),)
        )
