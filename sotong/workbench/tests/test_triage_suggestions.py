"""The triage queue shows the other likely categories next to the reasons, with their
owners and probabilities, and one click on a suggestion opens the case in that category."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from html.parser import HTMLParser

import pytest

from sotong.cases.models import Case
from sotong.conftest import client_for
from sotong.directory.models import Category
from sotong.inbox.normalize import NormalizedMessage
from sotong.inbox.services import ingest_batch
from sotong.triage.models import TriageCorrection, TriageDecision
from sotong.triage.services import triage_messages

UNKNOWN_REQUEST = "시청 앞에 새로 생긴 조형물 좀 없애 주세요"


@dataclass
class Form:
    action: str
    fields: dict[str, str] = field(default_factory=dict)  # hidden inputs but the CSRF token


class Forms(HTMLParser):
    """Each form of a page: its action and the hidden fields a click on its button sends."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: list[Form] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = {k: v or "" for k, v in attrs}
        if tag == "form":
            self.forms.append(Form(found.get("action", "")))
        elif self.forms and tag == "input" and found.get("type") == "hidden":
            self.forms[-1].fields[found["name"]] = found.get("value", "")
            self.forms[-1].fields.pop("csrfmiddlewaretoken", None)


@pytest.fixture
def waiting(people) -> TriageDecision:
    [message] = ingest_batch(
        [NormalizedMessage(channel="x", external_id="sug-1", text=UNKNOWN_REQUEST)]
    )
    triage_messages([message.pk])
    decision = TriageDecision.objects.get(message=message)
    assert decision.review == "waiting"
    decision.alternatives = [["culture-events", 0.41], ["parks-trees", 0.22], ["gone", 0.05]]
    decision.save(update_fields=["alternatives"])
    return decision


def suggestion_forms(html: str, decision: TriageDecision) -> list[Form]:
    parser = Forms()
    parser.feed(html)
    review = f"/work/triage/{decision.pk}/review/"
    return [f for f in parser.forms if f.action == review and "category" in f.fields]


def test_queue_shows_suggestions_with_names_owners_and_percentages(people, waiting):
    html = client_for(people["center"]).get("/work/triage/").content.decode()
    culture = Category.objects.select_related("owner").get(code="culture-events")
    parks = Category.objects.select_related("owner").get(code="parks-trees")
    assert f"{culture.name} — {culture.owner.name} (41%)" in html
    assert f"{parks.name} — {parks.owner.name} (22%)" in html
    assert "gone (5%)" in html  # an unknown code is shown, but offers no click
    assert [f.fields for f in suggestion_forms(html, waiting)] == [
        {"relevant": "yes", "category": "culture-events"},
        {"relevant": "yes", "category": "parks-trees"},
    ]
    # The full review form is still there.
    assert re.search(r'<select name="category">', html) and 'name="unit"' in html


def test_one_click_on_a_suggestion_opens_the_case_in_that_category(people, waiting):
    center = client_for(people["center"])
    html = center.get("/work/triage/").content.decode()
    [culture, _parks] = suggestion_forms(html, waiting)
    response = center.post(culture.action, culture.fields, HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    case = Case.objects.get(case_messages__message=waiting.message)
    assert case.category.code == "culture-events"
    assert case.unit.code == Category.objects.get(code="culture-events").owner.code
    assert case.number in response.content.decode()
    waiting.refresh_from_db()
    assert waiting.review == "reviewed" and waiting.category.code == "culture-events"
    assert TriageCorrection.objects.filter(field="category", after="culture-events").exists()
    assert UNKNOWN_REQUEST not in center.get("/work/triage/").content.decode()


def test_an_inactive_category_is_shown_but_not_offered(people, waiting):
    Category.objects.filter(code="parks-trees").update(active=False)
    html = client_for(people["center"]).get("/work/triage/").content.decode()
    parks = Category.objects.select_related("owner").get(code="parks-trees")
    assert f"{parks.name} — {parks.owner.name} (22%)" in html
    offered = [f.fields["category"] for f in suggestion_forms(html, waiting)]
    assert offered == ["culture-events"]
