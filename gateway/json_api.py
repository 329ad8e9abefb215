"""JSON over HTTP for every public RPC, from the same protos: the transcoder config and an OpenAPI document.

Both come from the descriptor set `make protos` builds (gen/clinic_descriptors.pb: every public proto
with its imports and comments). Envoy's gRPC-JSON transcoder maps `POST /clinic.v1.Service/Method`
with a JSON body (the proto3 JSON mapping: lowerCamelCase names, enums by name, int64 as strings) to
the gRPC call and the answer back to JSON; errors come back as a JSON `google.rpc.Status` whose
details carry the same `google.rpc.BadRequest` field violations as the gRPC call. The OpenAPI
document describes exactly those paths; nothing is written by hand.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from google.protobuf import descriptor_pb2

from . import routes

DEFAULT_PATH = Path(__file__).resolve().parent.parent / "gen" / "clinic_descriptors.pb"
OPENAPI_PATH = "/openapi.json"
F = descriptor_pb2.FieldDescriptorProto

_SCALARS: dict[int, dict[str, Any]] = {
    F.TYPE_DOUBLE: {"type": "number", "format": "double"},
    F.TYPE_FLOAT: {"type": "number", "format": "float"},
    F.TYPE_INT32: {"type": "integer", "format": "int32"},
    F.TYPE_SINT32: {"type": "integer", "format": "int32"},
    F.TYPE_SFIXED32: {"type": "integer", "format": "int32"},
    F.TYPE_UINT32: {"type": "integer", "format": "int64", "minimum": 0},
    F.TYPE_FIXED32: {"type": "integer", "format": "int64", "minimum": 0},
    # 64-bit integers are JSON strings in the proto3 mapping (JavaScript numbers lose precision).
    F.TYPE_INT64: {"type": "string", "format": "int64"},
    F.TYPE_SINT64: {"type": "string", "format": "int64"},
    F.TYPE_SFIXED64: {"type": "string", "format": "int64"},
    F.TYPE_UINT64: {"type": "string", "format": "uint64"},
    F.TYPE_FIXED64: {"type": "string", "format": "uint64"},
    F.TYPE_BOOL: {"type": "boolean"},
    F.TYPE_STRING: {"type": "string"},
    F.TYPE_BYTES: {"type": "string", "format": "byte"},
}
# Well-known types with a JSON form of their own.
_WELL_KNOWN: dict[str, dict[str, Any]] = {
    ".google.protobuf.Timestamp": {"type": "string", "format": "date-time"},
    ".google.protobuf.Duration": {"type": "string", "pattern": r"^-?\d+(\.\d+)?s$"},
    ".google.protobuf.Any": {
        "type": "object",
        "properties": {"@type": {"type": "string"}},
        "additionalProperties": True,
    },
}


def load(path: str | Path) -> descriptor_pb2.FileDescriptorSet:
    files = descriptor_pb2.FileDescriptorSet()
    files.ParseFromString(Path(path).read_bytes())
    return files


def public_services(files: descriptor_pb2.FileDescriptorSet) -> list[str]:
    """The services the edge routes (gateway/routes.py) that the descriptor set describes."""
    present = {f"{f.package}.{s.name}" for f in files.file for s in f.service}
    return [name for name in routes.SERVICES if name in present]


def transcoder(files: descriptor_pb2.FileDescriptorSet, services: Iterable[str]) -> dict[str, Any]:
    """The GrpcJsonTranscoder fields: unannotated methods map to POST /pkg.Service/Method (auto_mapping)."""
    return {
        "proto_descriptor_bin": base64.b64encode(files.SerializeToString()).decode(),
        "services": list(services),
        "auto_mapping": True,
        "convert_grpc_status": True,  # a gRPC error becomes a JSON google.rpc.Status, details included
        "print_options": {"always_print_primitive_fields": True, "always_print_enums_as_ints": False},
        # Anything that is not a public method (the page, /fhir/R4, /openapi.json) passes untouched.
        "request_validation_options": {"reject_unknown_method": False},
    }


class _Index:
    def __init__(self, files: descriptor_pb2.FileDescriptorSet) -> None:
        self.messages: dict[str, descriptor_pb2.DescriptorProto] = {}
        self.enums: dict[str, descriptor_pb2.EnumDescriptorProto] = {}
        self.comments: dict[str, str] = {}
        for f in files.file:
            docs = {tuple(loc.path): loc.leading_comments.strip() for loc in f.source_code_info.location}
            docs.update(
                {
                    tuple(loc.path): loc.trailing_comments.strip()
                    for loc in f.source_code_info.location
                    if loc.trailing_comments.strip() and not loc.leading_comments.strip()
                }
            )
            for i, message in enumerate(f.message_type):
                self._message(f".{f.package}.{message.name}", message, (4, i), docs)
            for enum in f.enum_type:
                self.enums[f".{f.package}.{enum.name}"] = enum
            for si, service in enumerate(f.service):
                for mi, method in enumerate(service.method):
                    text = docs.get((6, si, 2, mi), "")
                    if text:
                        self.comments[f"{f.package}.{service.name}/{method.name}"] = text

    def _message(self, name: str, message, path: tuple[int, ...], docs: dict) -> None:
        self.messages[name] = message
        for fi, field in enumerate(message.field):
            text = docs.get((*path, 2, fi), "")
            if text:
                self.comments[f"{name}.{field.name}"] = text
        for i, nested in enumerate(message.nested_type):
            self._message(f"{name}.{nested.name}", nested, (*path, 3, i), docs)
        for nested_enum in message.enum_type:
            self.enums[f"{name}.{nested_enum.name}"] = nested_enum


def _ref(type_name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{type_name.lstrip('.')}"}


def _schemas(index: _Index, roots: Iterable[str]) -> dict[str, Any]:
    """Every message and enum reachable from `roots`, as OpenAPI schemas in the proto3 JSON mapping."""
    out: dict[str, Any] = {}
    todo = list(roots)
    while todo:
        name = todo.pop()
        key = name.lstrip(".")
        if key in out or name in _WELL_KNOWN:
            continue
        if name in index.enums:
            out[key] = {"type": "string", "enum": [v.name for v in index.enums[name].value]}
            continue
        message = index.messages[name]
        properties: dict[str, Any] = {}
        for field in message.field:
            schema, refs = _field_schema(index, field)
            todo.extend(refs)
            text = index.comments.get(f"{name}.{field.name}")
            if text:
                schema = {**schema, "description": text}
            properties[field.json_name] = schema
        out[key] = {"type": "object", "properties": properties}
    return out


def _field_schema(index: _Index, field: descriptor_pb2.FieldDescriptorProto) -> tuple[dict[str, Any], list]:
    entry = index.messages.get(field.type_name)
    if entry is not None and entry.options.map_entry:
        value_schema, refs = _field_schema(index, entry.field[1])
        return {"type": "object", "additionalProperties": value_schema}, refs
    refs: list[str] = []
    if field.type in (F.TYPE_MESSAGE, F.TYPE_ENUM):
        schema = _WELL_KNOWN.get(field.type_name) or _ref(field.type_name)
        refs.append(field.type_name)
    else:
        schema = dict(_SCALARS[field.type])
    if field.label == F.LABEL_REPEATED:
        schema = {"type": "array", "items": schema}
    return schema, refs


def openapi(files: descriptor_pb2.FileDescriptorSet, services: Iterable[str]) -> dict[str, Any]:
    """The OpenAPI 3.0 document of the JSON mapping: one POST path per public method."""
    index = _Index(files)
    paths: dict[str, Any] = {}
    roots = [".google.rpc.Status", ".google.rpc.BadRequest"]
    wanted = set(services)
    for f in files.file:
        for service in f.service:
            full = f"{f.package}.{service.name}"
            if full not in wanted:
                continue
            for method in service.method:
                roots += [method.input_type, method.output_type]
                answer: dict[str, Any] = _ref(method.output_type)
                if method.server_streaming:  # the transcoder answers a stream as a JSON array
                    answer = {"type": "array", "items": answer}
                operation: dict[str, Any] = {
                    "operationId": f"{service.name}_{method.name}",
                    "tags": [full],
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": _ref(method.input_type)}},
                    },
                    "responses": {
                        "200": {"description": "OK", "content": {"application/json": {"schema": answer}}},
                        "default": {
                            "description": "a gRPC error as google.rpc.Status (details: BadRequest, ...)",
                            "content": {"application/json": {"schema": _ref(".google.rpc.Status")}},
                        },
                    },
                }
                text = index.comments.get(f"{full}/{method.name}")
                if text:
                    operation["description"] = text
                paths[f"/{full}/{method.name}"] = {"post": operation}
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "Clinic booking API (gRPC-JSON mapping)",
            "version": "v1",
            "description": (
                "Every public gRPC method as POST /<package>.<Service>/<Method> with a JSON body in the "
                "proto3 JSON mapping. Generated from the protos; the same JWT as gRPC (Bearer)."
            ),
        },
        "servers": [{"url": "/"}],
        "security": [{"bearer": []}],
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}},
            "schemas": _schemas(index, roots),
        },
    }
