"""The catalog of medical services: loaded once at start, validated entry by entry."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from clinic.v1 import common_pb2
from clinic_common.config import ConfigError
from clinic_common.money import CURRENCY, money, parse_major

DEFAULT_CATALOG = Path(__file__).with_name("catalog.json")

GENDERS = {
    "female": common_pb2.GENDER_FEMALE,
    "male": common_pb2.GENDER_MALE,
    "other": common_pb2.GENDER_OTHER,
}


@dataclass(frozen=True)
class Service:
    id: str
    name: str
    price_minor: int
    genders: frozenset[int]  # empty: everyone
    daily_capacity: int

    def offered_to(self, gender: int) -> bool:
        return not self.genders or gender in self.genders

    def to_proto(self, currency: str) -> common_pb2.MedicalService:
        return common_pb2.MedicalService(
            id=self.id,
            name=self.name,
            price=money(self.price_minor, currency),
            genders=sorted(self.genders),
            daily_capacity=self.daily_capacity,
        )


@dataclass(frozen=True)
class Catalog:
    currency: str
    services: dict[str, Service]

    def offered(self, gender: int) -> list[Service]:
        return [s for s in self.services.values() if gender == 0 or s.offered_to(gender)]


def load(path: Path) -> Catalog:
    try:
        raw = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(f"CLINIC_CATALOG={path}: cannot read the catalog: {exc}") from None
    return parse(raw, str(path))


def parse(raw: object, origin: str = "catalog") -> Catalog:
    if not isinstance(raw, dict) or not isinstance(raw.get("services"), list):
        raise ConfigError(f"{origin}: expected an object with a 'services' list")
    currency = raw.get("currency", CURRENCY)
    if currency != CURRENCY:
        raise ConfigError(f"{origin}: currency {currency!r} is not supported (only INR)")
    services: dict[str, Service] = {}
    for index, entry in enumerate(raw["services"]):
        label = f"{origin}: services[{index}]"
        if not isinstance(entry, dict):
            raise ConfigError(f"{label} is not an object")
        service_id = entry.get("id")
        if not isinstance(service_id, str) or not service_id.strip():
            raise ConfigError(f"{label} has no 'id'")
        label = f"{origin}: service {service_id!r}"
        if service_id in services:
            raise ConfigError(f"{label} appears twice")
        name = entry.get("name")
        if not isinstance(name, str) or not name.strip():
            raise ConfigError(f"{label} has no 'name'")
        try:
            price = parse_major(entry.get("price"))
        except ValueError as exc:
            raise ConfigError(f"{label} has a bad 'price': {exc}") from None
        capacity = entry.get("daily_capacity")
        if not isinstance(capacity, int) or isinstance(capacity, bool) or capacity < 0:
            raise ConfigError(f"{label} needs a non-negative integer 'daily_capacity'")
        genders = entry.get("genders", [])
        if not isinstance(genders, list) or any(g not in GENDERS for g in genders):
            raise ConfigError(f"{label} has bad 'genders' (allowed: female, male, other)")
        services[service_id] = Service(
            id=service_id,
            name=name,
            price_minor=price,
            genders=frozenset(GENDERS[g] for g in genders),
            daily_capacity=capacity,
        )
    if not services:
        raise ConfigError(f"{origin}: the catalog has no services")
    return Catalog(currency=currency, services=services)
