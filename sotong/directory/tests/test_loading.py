"""The Seoul directory ships as data and loads into the database; loading again changes
nothing; a broken directory is refused with a message naming the problem, and nothing of it
is kept."""

from __future__ import annotations

import shutil

import pytest
import yaml

from sotong.directory.loading import DEFAULT_DIRECTORY, FILES, DirectoryError, load_directory
from sotong.directory.models import Account, CaseType, Category, Channel, TriageRule, Unit
from sotong.lib.business_days import DeadlineUnit

MODELS = (Unit, CaseType, Category, TriageRule, Channel, Account)


def counts() -> dict[str, int]:
    return {model.__name__: model.objects.count() for model in MODELS}


def test_seoul_has_its_25_district_offices(directory):
    districts = Unit.objects.filter(kind=Unit.Kind.DISTRICT)
    names = list(districts.values_list("district_name", flat=True))
    assert len(names) == 25 and len(set(names)) == 25
    assert all(name.endswith("구") for name in names), names
    assert {"종로구", "중구", "강남구", "마포구", "강동구"} <= set(names)
    assert Unit.objects.filter(kind=Unit.Kind.CENTER).count() == 1
    assert Unit.objects.filter(kind=Unit.Kind.DEPARTMENT).count() >= 10
    assert directory.units == Unit.objects.count()


def test_categories_each_have_an_owner_a_case_type_and_rules(directory):
    categories = Category.objects.select_related("owner", "case_type")
    assert categories.count() >= 20
    for category in categories:
        assert category.owner.active, category.code
        assert category.case_type_id is not None, category.code
        assert category.rules.exists(), f"{category.code} has no triage rules"
    # The district-versus-city rule is data: some matters are usually a district's.
    assert categories.filter(district_matter=True).exists()
    assert categories.filter(district_matter=False).exists()
    # Request cues: rules without a category.
    assert TriageRule.objects.filter(category__isnull=True).exists()
    assert directory.rules == TriageRule.objects.count()


def test_39_accounts_and_the_mayors_account_replies_through_another(directory):
    assert Account.objects.count() == 39 == directory.accounts
    delegated = Account.objects.filter(replies_via__isnull=False).select_related(
        "channel", "replies_via"
    )
    assert delegated.count() >= 1
    mayor = delegated.get(channel__code="x")
    assert "mayor" in mayor.handle
    assert mayor.replies_via != mayor and mayor.replies_via.channel == mayor.channel
    assert mayor.reply_account == mayor.replies_via
    assert mayor.replies_via.replies_via is None
    assert Channel.objects.filter(code="web").exists()


def test_case_types_and_their_default_deadlines(directory):
    types = {t.code: t for t in CaseType.objects.all()}
    assert set(types) == {"opinion", "request", "complaint", "urgent"}
    expected = {
        "opinion": (3, DeadlineUnit.BUSINESS_DAYS, False),
        "request": (7, DeadlineUnit.BUSINESS_DAYS, False),
        "complaint": (7, DeadlineUnit.BUSINESS_DAYS, False),
        "urgent": (1, DeadlineUnit.CLOCK_HOURS, True),
    }
    for code, (amount, unit, urgent) in expected.items():
        assert (types[code].deadline_amount, types[code].deadline_unit, types[code].urgent) == (
            amount,
            unit,
            urgent,
        ), code


def test_loading_twice_changes_nothing(directory):
    before = counts()
    names = dict(Unit.objects.values_list("code", "name"))
    again = load_directory()
    assert counts() == before
    assert str(again) == str(directory)
    assert dict(Unit.objects.values_list("code", "name")) == names


def test_reloading_keeps_what_the_city_added_in_the_admin(directory):
    extra = Unit.objects.create(
        code="citizen-ombudsman", name="시민감사옴부즈만", kind=Unit.Kind.DEPARTMENT
    )
    load_directory()
    assert Unit.objects.filter(pk=extra.pk).exists()


# --- Broken directories ----------------------------------------------------------------------


@pytest.fixture
def copy(tmp_path):
    """An editable copy of the Seoul directory."""
    for name in FILES:
        shutil.copy(DEFAULT_DIRECTORY / name, tmp_path / name)
    return tmp_path


def edit(folder, name: str, change) -> None:
    path = folder / name
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    change(data)
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")


def bad_regex(folder):
    edit(
        folder,
        "categories.yaml",
        lambda d: d["categories"][-1].setdefault("patterns", []).append("보안등(고장"),
    )
    return "pattern '보안등(고장'"


def unknown_owner(folder):
    edit(folder, "categories.yaml", lambda d: d["categories"][-1].update(owner="no-such-unit"))
    return "unit 'no-such-unit' does not exist"


def missing_file(folder):
    (folder / "channels.yaml").unlink()
    return "channels.yaml: file missing"


def unknown_deadline_unit(folder):
    edit(
        folder,
        "case_types.yaml",
        lambda d: d["case_types"][0]["deadline"].update(unit="fortnights"),
    )
    return "deadline unit 'fortnights' is unknown"


def bad_reply_account(folder):
    edit(folder, "channels.yaml", lambda d: d["accounts"][0].update(replies_via="x:@nobody"))
    return "replies_via 'x:@nobody' is not an account"


BREAKAGES = [bad_regex, unknown_owner, missing_file, unknown_deadline_unit, bad_reply_account]


@pytest.mark.django_db
@pytest.mark.parametrize("breakage", BREAKAGES, ids=lambda f: f.__name__)
def test_broken_directory_is_refused_and_nothing_is_kept(copy, breakage):
    problem = breakage(copy)
    with pytest.raises(DirectoryError) as caught:
        load_directory(copy)
    assert problem in str(caught.value)
    assert counts() == dict.fromkeys(counts(), 0)


@pytest.mark.parametrize("breakage", BREAKAGES, ids=lambda f: f.__name__)
def test_broken_reload_leaves_the_loaded_directory_as_it_was(directory, copy, breakage):
    # A city edits a unit's name and breaks something else in the same edit.
    edit(copy, "units.yaml", lambda d: d["units"][0].update(name="이름을 바꾼 센터"))
    before = counts()
    names = dict(Unit.objects.values_list("code", "name"))
    problem = breakage(copy)
    with pytest.raises(DirectoryError) as caught:
        load_directory(copy)
    assert problem in str(caught.value)
    assert counts() == before
    assert dict(Unit.objects.values_list("code", "name")) == names


def test_the_unbroken_copy_loads(directory, copy):
    edit(copy, "units.yaml", lambda d: d["units"][0].update(name="이름을 바꾼 센터"))
    load_directory(copy)
    assert Unit.objects.filter(name="이름을 바꾼 센터").count() == 1
