"""The Content-Security-Policy: every page is sent with a policy that allows only this site's
own scripts and styles (no unsafe-inline, no unsafe-eval), the pages hold no inline code it
would refuse, and the officers' htmx pages still work under it in a real browser."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from django.test import Client
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

from sotong.browser_testing import assert_no_csp_violation, csp_violations
from sotong.cases.models import Case
from sotong.conftest import client_for
from sotong.inbox.normalize import NormalizedMessage
from sotong.inbox.services import ingest_batch
from sotong.triage.services import triage_messages

TEMPLATES = Path(__file__).resolve().parents[2]


def policy(response) -> dict[str, list[str]]:
    header = response["Content-Security-Policy"]
    directives = [part.strip().split() for part in header.split(";") if part.strip()]
    return {name: values for name, *values in directives}


class InlineCode(HTMLParser):
    """Collects what a policy without unsafe-inline refuses: inline scripts, <style>
    elements, style= attributes, on*= handlers and javascript: links."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        names = {name for name, _ in attrs}
        if tag == "script" and "src" not in names:
            self.found.append("<script> without src")
        if tag == "style":
            self.found.append("<style> element")
        for name, value in attrs:
            if name == "style":
                self.found.append(f"style= on <{tag}>")
            elif name.startswith("on"):
                self.found.append(f"{name}= on <{tag}>")
            elif name in {"href", "src", "action", "formaction"} and (
                value or ""
            ).strip().lower().startswith("javascript:"):
                self.found.append(f"javascript: URL in {name}= on <{tag}>")


def inline_code(html: str) -> list[str]:
    parser = InlineCode()
    parser.feed(html)
    return parser.found


@pytest.fixture
def case(people) -> Case:
    messages = ingest_batch(
        [
            NormalizedMessage(
                channel="x",
                external_id="csp-1",
                text="종로구 창신동 골목 보안등이 꺼졌어요. 고쳐주세요.",
            )
        ]
    )
    triage_messages([m.pk for m in messages])
    return Case.objects.get()


def test_every_page_carries_the_policy_without_inline_code(people, case):
    officer = client_for(people["jongno"])
    center = client_for(people["center"])
    pages = [
        (Client(), "/"),
        (Client(), "/write/"),
        (Client(), "/accounts/login/"),
        (Client(), "/no-such-page/"),  # Django's 404
        (officer, "/work/inbox/"),
        (officer, f"/work/cases/{case.pk}/"),
        (officer, "/work/cases/999999/"),  # the domain error page
        (center, "/work/triage/"),
        (center, "/work/imports/"),
    ]
    for client, path in pages:
        response = client.get(path)
        assert response.status_code in (200, 404), path
        csp = policy(response)
        assert csp["default-src"] == ["'self'"], path
        assert csp["object-src"] == ["'none'"] and csp["frame-ancestors"] == ["'none'"], path
        assert csp["base-uri"] == ["'self'"] and csp["form-action"] == ["'self'"], path
        assert csp["img-src"] == ["'self'", "data:"], path
        header = response["Content-Security-Policy"]
        assert "unsafe-inline" not in header and "unsafe-eval" not in header, path
        if "html" in response["Content-Type"]:
            assert inline_code(response.content.decode()) == [], path


def test_json_and_errors_carry_it_too(directory):
    assert "default-src 'self'" in Client().get("/api/openapi.json")["Content-Security-Policy"]
    response = Client().post("/i18n/setlang/", {"language": "en", "next": "/"})
    assert response.status_code == 302 and "Content-Security-Policy" in response


def test_no_template_holds_inline_code():
    # Pages no test renders are covered by reading the templates themselves.
    offenders = []
    for template in sorted(TEMPLATES.rglob("templates/**/*.html")):
        text = re.sub(r"{#.*?#}", "", template.read_text(encoding="utf-8"), flags=re.S)
        # Template tags inside attributes are not HTML: blank them before parsing.
        text = re.sub(r"{%.*?%}|{{.*?}}", "x", text, flags=re.S)
        offenders += [f"{template.relative_to(TEMPLATES)}: {what}" for what in inline_code(text)]
    assert offenders == []


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_officer_pages_work_in_the_browser_under_the_policy(browser, live_server, people, case):
    """htmx keeps working (the answer's guideline check updates as the officer types) and the
    console reports nothing the policy refused, on each page the officers use."""
    base = live_server.url
    browser.get(f"{base}/accounts/login/")
    browser.find_element(By.NAME, "username").send_keys("center")
    browser.find_element(By.NAME, "password").send_keys("pw-center")
    browser.find_element(By.CSS_SELECTOR, "main form button[type=submit]").click()
    WebDriverWait(browser, 10).until(ec.url_contains("/work/"))
    assert_no_csp_violation(browser, "sign-in")

    for path in ["/work/inbox/", "/work/triage/", "/work/imports/", "/work/connectors/"]:
        browser.get(base + path)
        assert browser.find_element(By.TAG_NAME, "h1").text, path
        assert_no_csp_violation(browser, path)

    browser.get(f"{base}/work/cases/{case.pk}/")
    WebDriverWait(browser, 10).until(ec.text_to_be_present_in_element((By.ID, "guideline"), "작성"))
    browser.find_element(By.ID, "answer-text").send_keys("확인했습니다.")
    WebDriverWait(browser, 10).until(
        ec.presence_of_element_located((By.CSS_SELECTOR, "#guideline li.missing"))
    )
    assert_no_csp_violation(browser, "the case page with the live guideline check")


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_the_console_check_sees_a_refused_inline_script(browser, live_server, directory):
    """The check the browser tests rely on catches a violation when there is one."""
    browser.get(f"{live_server.url}/accounts/login/")
    browser.execute_script(
        "const s = document.createElement('script'); s.textContent = 'window.ran = 1';"
        "document.head.appendChild(s);"
    )
    WebDriverWait(browser, 5).until(lambda b: csp_violations(b.get_log("browser")) or None)
    assert browser.execute_script("return window.ran") is None
