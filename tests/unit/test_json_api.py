"""The JSON mapping's edge config and OpenAPI document, from the descriptor set `make protos` builds."""

from __future__ import annotations

from clinic.v1 import booking_pb2, doctor_pb2, frontdesk_pb2, notification_pb2, patient_pb2
from gateway import json_api, routes
from tests.unit.test_edge_config import bootstrap

FILES = json_api.load(json_api.DEFAULT_PATH)
MODULES = (booking_pb2, doctor_pb2, frontdesk_pb2, notification_pb2, patient_pb2)


def test_every_public_method_has_a_json_path():
    doc = json_api.openapi(FILES, json_api.public_services(FILES))
    assert set(json_api.public_services(FILES)) == set(routes.SERVICES)
    for module in MODULES:
        for service in module.DESCRIPTOR.services_by_name.values():
            for method in service.methods:
                assert f"/{service.full_name}/{method.name}" in doc["paths"]


def test_schemas_follow_the_proto3_json_mapping():
    schemas = json_api.openapi(FILES, routes.SERVICES)["components"]["schemas"]
    money = schemas["clinic.v1.Money"]["properties"]
    assert money["amountMinor"] == {"type": "string", "format": "int64"}  # int64 is a JSON string
    booking = schemas["clinic.v1.Booking"]["properties"]
    assert booking["createdAt"]["format"] == "date-time"
    assert booking["status"] == {"$ref": "#/components/schemas/clinic.v1.BookingStatus"}
    assert "BOOKING_STATUS_CONFIRMED" in schemas["clinic.v1.BookingStatus"]["enum"]
    assert booking["services"]["type"] == "array"


def test_the_edge_transcodes_every_public_service_and_serves_the_document_openly():
    boot = bootstrap()
    (listener,) = [x for x in boot["static_resources"]["listeners"] if x["name"] == "public"]
    hcm = listener["filter_chains"][0]["filters"][0]["typed_config"]
    names = [f["name"] for f in hcm["http_filters"]]
    # after grpc-web (the page) and before the token check: a JSON call is checked like a gRPC one
    at = {name.rpartition(".")[2]: i for i, name in enumerate(names)}
    assert at["grpc_web"] < at["grpc_json_transcoder"] < at["jwt_authn"]
    (transcoder,) = [f for f in hcm["http_filters"] if f["name"].endswith("grpc_json_transcoder")]
    assert set(transcoder["typed_config"]["services"]) == set(routes.SERVICES)
    assert transcoder["typed_config"]["auto_mapping"] is True
    (doc,) = [r for r in hcm["route_config"]["virtual_hosts"][0]["routes"] if r["name"] == "openapi"]
    assert doc["typed_per_filter_config"]["envoy.filters.http.jwt_authn"]["disabled"] is True


def test_no_descriptor_set_means_no_json_mapping():
    boot = bootstrap(CLINIC_PROTO_DESCRIPTORS="off")
    (listener,) = [x for x in boot["static_resources"]["listeners"] if x["name"] == "public"]
    hcm = listener["filter_chains"][0]["filters"][0]["typed_config"]
    assert not [f for f in hcm["http_filters"] if f["name"].endswith("grpc_json_transcoder")]
