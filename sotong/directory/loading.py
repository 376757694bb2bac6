"""Loading a city's directory from its data files (units, case types, categories with their
triage rules, channels and accounts) into the database.

Loading is idempotent: records are matched by their codes and updated in place, so a city
can edit the files and load them again. Records a city added in the admin are left alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from django.db import transaction

from sotong.directory.models import (
    Account,
    CaseType,
    Category,
    Channel,
    DeadlineUnit,
    PlaceDirectory,
    TriageRule,
    Unit,
)
from sotong.triage.location import GazetteerError, load_gazetteer
from sotong.triage.rules import validate_pattern

DEFAULT_DIRECTORY = Path(__file__).resolve().parent / "data" / "seoul"
FILES = ("units.yaml", "case_types.yaml", "categories.yaml", "channels.yaml")
GAZETTEER_FILE = "gazetteer.yaml"  # optional: without it, districts are found by name only


class DirectoryError(ValueError):
    """A directory file is missing, unreadable or refers to something that does not exist."""


@dataclass
class LoadReport:
    units: int = 0
    case_types: int = 0
    categories: int = 0
    rules: int = 0
    channels: int = 0
    accounts: int = 0
    places: str = "no gazetteer"

    def __str__(self) -> str:
        return (
            f"{self.units} units, {self.case_types} case types, {self.categories} categories "
            f"({self.rules} rules), {self.channels} channels, {self.accounts} accounts, "
            f"{self.places}"
        )


def read_directory(folder: Path) -> dict[str, Any]:
    data: dict[str, Any] = {}
    for name in FILES:
        path = folder / name
        if not path.exists():
            raise DirectoryError(f"{path}: file missing")
        try:
            content = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except (yaml.YAMLError, UnicodeDecodeError) as exc:
            raise DirectoryError(f"{path}: {exc}") from exc
        if not isinstance(content, dict):
            raise DirectoryError(f"{path}: expected a mapping at the top")
        data.update(content)
    return data


def _require(item: dict[str, Any], key: str, where: str) -> Any:
    if key not in item or item[key] in (None, ""):
        raise DirectoryError(f"{where}: '{key}' is missing")
    return item[key]


@transaction.atomic
def load_directory(folder: Path = DEFAULT_DIRECTORY) -> LoadReport:
    """Create or update the directory from the files in `folder`."""
    data = read_directory(folder)
    report = LoadReport()

    units: dict[str, Unit] = {}
    for item in data.get("units", []):
        code = _require(item, "code", "units")
        unit, _ = Unit.objects.update_or_create(
            code=code,
            defaults={
                "name": _require(item, "name", f"unit {code}"),
                "name_en": item.get("name_en") or "",
                "kind": _require(item, "kind", f"unit {code}"),
                "phone": item.get("phone") or "",
                "requires_approval": bool(item.get("requires_approval", False)),
                "district_name": item.get("district") or "",
                "aliases": list(item.get("aliases") or []),
            },
        )
        units[code] = unit
        report.units += 1
    for item in data.get("units", []):
        if parent := item.get("parent"):
            if parent not in units:
                raise DirectoryError(f"unit {item['code']}: parent '{parent}' is not a unit")
            Unit.objects.filter(pk=units[item["code"]].pk).update(parent=units[parent])

    case_types: dict[str, CaseType] = {}
    for item in data.get("case_types", []):
        code = _require(item, "code", "case_types")
        deadline = _require(item, "deadline", f"case type {code}")
        if not isinstance(deadline, dict) or not isinstance(deadline.get("amount"), int):
            raise DirectoryError(
                f"case type {code}: deadline needs a whole-number 'amount' and a 'unit'"
            )
        unit_name = deadline.get("unit")
        if unit_name not in DeadlineUnit.values:
            raise DirectoryError(f"case type {code}: deadline unit '{unit_name}' is unknown")
        case_types[code], _ = CaseType.objects.update_or_create(
            code=code,
            defaults={
                "name": _require(item, "name", f"case type {code}"),
                "name_en": item.get("name_en") or "",
                "deadline_amount": int(deadline["amount"]),
                "deadline_unit": unit_name,
                "urgent": bool(item.get("urgent", unit_name == DeadlineUnit.CLOCK_HOURS)),
            },
        )
        report.case_types += 1

    def unit_for(code: str, where: str) -> Unit:
        try:
            return units.get(code) or Unit.objects.get(code=code)
        except Unit.DoesNotExist:
            raise DirectoryError(f"{where}: unit '{code}' does not exist") from None

    existing_rules: set[tuple[int | None, str, str]] = set(
        TriageRule.objects.values_list("category_id", "kind", "text")
    )

    def save_rules(category: Category | None, item: dict[str, Any], where: str) -> int:
        new_rules = []
        count = 0
        kinds = ((TriageRule.Kind.KEYWORD, "keywords"), (TriageRule.Kind.PATTERN, "patterns"))
        for kind, key in kinds:
            for text in item.get(key) or []:
                text = str(text)
                if kind == TriageRule.Kind.PATTERN:
                    try:
                        validate_pattern(text)
                    except ValueError as exc:
                        raise DirectoryError(f"{where}: pattern {text!r}: {exc}") from exc
                identity = (category.pk if category else None, kind.value, text)
                if identity not in existing_rules:
                    existing_rules.add(identity)
                    new_rules.append(TriageRule(category=category, kind=kind, text=text))
                count += 1
        TriageRule.objects.bulk_create(new_rules)
        return count

    report.rules += save_rules(None, {"patterns": data.get("request_cues", [])}, "request_cues")
    for item in data.get("categories", []):
        code = _require(item, "code", "categories")
        type_code = _require(item, "case_type", f"category {code}")
        if type_code not in case_types and not CaseType.objects.filter(code=type_code).exists():
            raise DirectoryError(f"category {code}: case type '{type_code}' does not exist")
        category, _ = Category.objects.update_or_create(
            code=code,
            defaults={
                "name": _require(item, "name", f"category {code}"),
                "name_en": item.get("name_en") or "",
                "owner": unit_for(_require(item, "owner", f"category {code}"), f"category {code}"),
                "district_matter": bool(item.get("district_matter", False)),
                "case_type": case_types.get(type_code) or CaseType.objects.get(code=type_code),
            },
        )
        report.categories += 1
        report.rules += save_rules(category, item, f"category {code}")

    channels: dict[str, Channel] = {}
    for item in data.get("channels", []):
        code = _require(item, "code", "channels")
        channels[code], _ = Channel.objects.update_or_create(
            code=code,
            defaults={
                "name": _require(item, "name", f"channel {code}"),
                "name_en": item.get("name_en") or "",
            },
        )
        report.channels += 1

    accounts: dict[str, Account] = {}
    for item in data.get("accounts", []):
        channel_code = _require(item, "channel", "accounts")
        handle = str(_require(item, "handle", f"account on {channel_code}"))
        where = f"account {channel_code}:{handle}"
        channel = channels.get(channel_code) or Channel.objects.filter(code=channel_code).first()
        if channel is None:
            raise DirectoryError(f"{where}: channel '{channel_code}' does not exist")
        runner = unit_for(item["unit"], where) if item.get("unit") else None
        account, _ = Account.objects.update_or_create(
            channel=channel,
            handle=handle,
            defaults={"name": _require(item, "name", where), "unit": runner},
        )
        accounts[f"{channel_code}:{handle}"] = account
        report.accounts += 1
    for item in data.get("accounts", []):
        if via := item.get("replies_via"):
            key = f"{item['channel']}:{item['handle']}"
            if via not in accounts:
                raise DirectoryError(f"account {key}: replies_via '{via}' is not an account")
            Account.objects.filter(pk=accounts[key].pk).update(replies_via=accounts[via])
    gazetteer_file = folder / GAZETTEER_FILE
    if gazetteer_file.exists():
        try:
            places = load_gazetteer(gazetteer_file)
        except GazetteerError as exc:
            raise DirectoryError(str(exc)) from exc
        unknown = set(places.districts) - {u.district_name for u in units.values()}
        if unknown:
            raise DirectoryError(
                f"{gazetteer_file}: districts without an office: {sorted(unknown)}"
            )
        PlaceDirectory.objects.all().delete()
        PlaceDirectory.objects.create(
            data=yaml.safe_load(gazetteer_file.read_text(encoding="utf-8"))
        )
        report.places = "gazetteer: " + ", ".join(f"{n} {k}" for k, n in places.counts.items())
    return report
