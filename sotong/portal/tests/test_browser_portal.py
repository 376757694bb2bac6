"""The public portal in a real browser (Debian's headless Chromium through Selenium, against
a live server, with cases made by ingest and triage): the overview updates itself, search,
filters, a case page, the web form and its receipt, the language switch; every public page
passes axe-core's WCAG 2.1 AA rules in both languages at 360 and 1280 px without anything
refused by the Content-Security-Policy; screenshots land in var/screenshots/."""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import Select, WebDriverWait

from sotong.browser_testing import (
    DESKTOP,
    PHONE,
    SCREENSHOTS,
    assert_accessible,
    assert_no_csp_violation,
    blocking_violations,
    console_messages,
    csp_violations,
    describe_violations,
    horizontal_overflow,
    save_screenshots,
    set_viewport,
    wide_elements,
)
from sotong.cases import services
from sotong.cases.models import Case, case_number
from sotong.inbox.models import Message
from sotong.inbox.normalize import NormalizedMessage
from sotong.inbox.services import ingest_message
from sotong.triage.services import triage_messages

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

TEXTS = {
    "answered": "종로구 창신동 골목 보안등이 일주일째 꺼져 있어요. 고쳐주세요. 제 번호 010-2222-3333",
    "on_hold": "마포구 합정역 앞 보도블록이 깨져서 넘어질 뻔했어요. 보수 부탁드립니다.",
    "open": "강남구 역삼동 공사장 소음이 밤늦게까지 너무 심합니다. 단속해 주세요.",
    "merged": "서초구 반포동 한강공원 화장실 악취가 심해요. 청소 부탁드려요.",
    "target": "서초구 반포한강공원 공중화장실이 너무 더럽고 냄새납니다.",
}
ANSWER = (
    "소중한 의견 감사합니다. 말씀하신 창신동 골목 보안등 고장에 대하여 현장을 확인하였으며 "
    "11월 30일까지 교체할 예정입니다. 문의사항은 종로구청(02-2148-1234)으로 연락주시기 바랍니다."
)
HOLD_REASON = "보수 공사 일정을 조율하고 있습니다."


@dataclass
class Cases:
    """The numbers of the cases the tests look at, one in each public state."""

    answered: str
    on_hold: str
    open: str
    merged: str
    target: str


def ingest(text: str, external_id: str, channel: str = "x") -> Message:
    """A message as a connector delivers it, then triaged as the worker would."""
    message = ingest_message(
        NormalizedMessage(channel=channel, external_id=external_id, text=text)
    ).message
    triage_messages([message.pk])
    return message


@pytest.fixture
def cases(people) -> Cases:
    numbers = {}
    for key, text in TEXTS.items():
        message = ingest(text, f"browser-{key}")
        numbers[key] = Case.objects.get(case_messages__message=message).number
    case = {key: Case.objects.get(pk=int(number[1:])) for key, number in numbers.items()}
    services.draft_answer(case["answered"], ANSWER, actor=people["jongno"])
    services.publish_answer(case["answered"], actor=people["jongno"], override_reason="시험")
    services.hold_case(case["on_hold"], reason=HOLD_REASON, actor=None)
    services.merge_case(case["merged"], case["target"], actor=None)
    return Cases(**numbers)


def wait(browser, seconds: float = 10) -> WebDriverWait:
    # Elements vanish while a page navigates: keep polling rather than fail on them.
    return WebDriverWait(browser, seconds, ignored_exceptions=(WebDriverException,))


def main_text(browser) -> str:
    return browser.find_element(By.TAG_NAME, "main").text


def submit(form) -> None:
    form.find_element(By.CSS_SELECTOR, "button[type=submit], button:not([type])").click()


def choose_language(browser, code: str) -> None:
    """Follow the header's language link, as a visitor would, and wait for the page."""
    browser.find_element(By.CSS_SELECTOR, f".lang a[hreflang={code}]").click()
    wait(browser).until(lambda b: b.find_element(By.TAG_NAME, "html").get_attribute("lang") == code)


# 1. The live overview ------------------------------------------------------------------


def received_today(browser) -> str:
    return browser.find_element(By.CSS_SELECTOR, "[data-figure='today.received']").text


def test_overview_updates_without_reload_when_a_message_arrives(browser, live_server, cases):
    browser.get(live_server.url + "/")
    before = received_today(browser)
    # A mark on the page that a reload would wipe out.
    browser.execute_script("window.sotongTestMark = 'still here';")

    ingest("종로구 혜화동 버스정류장 의자가 부서졌어요.", "browser-live")

    wait(browser, 3).until(lambda b: received_today(b) != before)
    assert browser.execute_script("return window.sotongTestMark") == "still here"
    navigations = browser.execute_script(
        "return performance.getEntriesByType('navigation').map((n) => n.type)"
    )
    assert navigations == ["navigate"]
    assert_no_csp_violation(browser, "the live overview")


# 2–4. Search, filters, a case page ------------------------------------------------------


def test_search_finds_a_case_by_a_two_syllable_word(browser, live_server, cases):
    browser.get(live_server.url + "/cases/")
    box = browser.find_element(By.CSS_SELECTOR, "main input[name=q]")
    box.send_keys("소음")
    box.send_keys(Keys.ENTER)
    wait(browser).until(ec.url_contains("q="))
    text = main_text(browser)
    assert cases.open in text
    assert cases.answered not in text and cases.on_hold not in text
    assert_no_csp_violation(browser, "search")


def test_a_filter_narrows_the_list(browser, live_server, cases):
    browser.get(live_server.url + "/cases/")
    text = main_text(browser)
    assert cases.answered in text and cases.on_hold in text and cases.open in text
    Select(browser.find_element(By.CSS_SELECTOR, "main select[name=district]")).select_by_value(
        "마포구"
    )
    submit(
        browser.find_element(By.CSS_SELECTOR, "main select[name=district]").find_element(
            By.XPATH, "./ancestor::form"
        )
    )
    wait(browser).until(ec.url_contains("district="))
    text = main_text(browser)
    assert cases.on_hold in text
    assert cases.answered not in text and cases.open not in text
    assert_no_csp_violation(browser, "filters")


def test_case_page_shows_the_masked_text_the_answer_and_the_timeline(browser, live_server, cases):
    browser.get(f"{live_server.url}/cases/{cases.answered}/")
    text = main_text(browser)
    assert cases.answered in browser.find_element(By.TAG_NAME, "h1").text
    assert "창신동 골목 보안등" in text and "교체할 예정" in text
    assert "010-2222-3333" not in text and "[전화번호]" in text
    steps = browser.find_elements(By.CSS_SELECTOR, "main .timeline li")
    kinds = [step.get_attribute("class") for step in steps]
    assert kinds[0] == "event-received" and kinds[-1] == "event-answered"
    assert_no_csp_violation(browser, "a case page")

    browser.get(f"{live_server.url}/cases/{cases.on_hold}/")
    hold = browser.find_element(By.CSS_SELECTOR, "main .timeline li.event-on_hold")
    assert HOLD_REASON in hold.text

    # A merged case points to the one that carries the matter, and that one links back.
    browser.get(f"{live_server.url}/cases/{cases.merged}/")
    browser.find_element(By.CSS_SELECTOR, "main .timeline li.event-merged_into a").click()
    wait(browser).until(ec.url_contains(f"/cases/{cases.target}/"))
    assert cases.merged in main_text(browser)


# 5. The web form and its receipt --------------------------------------------------------


def write_to_the_city(browser, base: str, text: str) -> str:
    """Fill in and send the web form; return the receipt's address."""
    browser.get(base + "/write/")
    browser.find_element(By.NAME, "text").send_keys(text)
    Select(browser.find_element(By.NAME, "district")).select_by_value("종로구")
    browser.find_element(By.NAME, "contact").send_keys("citizen@mail.example")
    submit(browser.find_element(By.CSS_SELECTOR, "main form.write-form"))
    wait(browser).until(ec.url_contains("/receipt/"))
    return browser.current_url


def test_web_form_gives_a_receipt_that_later_shows_the_case_number(
    browser, live_server, directory, settings
):
    settings.SOTONG_FORM_MIN_SECONDS = 0
    receipt = write_to_the_city(
        browser, live_server.url, "창신동 골목 보안등이 꺼졌어요 <b>급해요</b> 010-9999-8888"
    )
    main = browser.find_element(By.TAG_NAME, "main")
    assert "<b>급해요</b>" in main.text  # shown as text, not markup
    assert not main.find_elements(By.CSS_SELECTOR, "blockquote b")
    assert "010-9999-8888" not in main.text and "citizen@mail.example" not in main.text
    assert_no_csp_violation(browser, "the form and its receipt")

    triage_messages(list(Message.objects.values_list("pk", flat=True)))
    number = Case.objects.get().number
    browser.get(receipt)
    browser.find_element(By.LINK_TEXT, number).click()
    wait(browser).until(ec.url_contains(f"/cases/{number}/"))
    assert "창신동 골목 보안등" in main_text(browser)


# 6. The language switch -----------------------------------------------------------------


def test_language_switch_turns_the_page_english_and_back(browser, live_server, cases):
    browser.get(f"{live_server.url}/cases/{cases.answered}/")
    assert browser.find_element(By.TAG_NAME, "html").get_attribute("lang") == "ko"
    korean = browser.find_element(By.TAG_NAME, "h1").text
    choose_language(browser, "en")
    assert browser.current_url.endswith(f"/cases/{cases.answered}/")  # the same page
    assert browser.find_element(By.TAG_NAME, "h1").text != korean
    assert "Write to the city" in browser.find_element(By.CSS_SELECTOR, "header nav").text
    choose_language(browser, "ko")
    assert browser.find_element(By.TAG_NAME, "h1").text == korean
    assert "Write to the city" not in browser.find_element(By.CSS_SELECTOR, "header nav").text


# 7–9. Every public page: axe-core, 360 px, the CSP; screenshots -------------------------


def public_pages(browser, base: str, cases: Cases) -> dict[str, str]:
    receipt = write_to_the_city(browser, base, "종로구 세검정로 가로등이 깜빡거려요")
    return {
        "overview": "/",
        "cases": "/cases/",
        "cases-none": "/cases/?q=%EC%97%86%EB%8A%94%EB%A7%90zq",  # 없는말zq: no result
        "case-answered": f"/cases/{cases.answered}/",
        "case-on-hold": f"/cases/{cases.on_hold}/",
        "case-merged": f"/cases/{cases.merged}/",
        "case-with-merged": f"/cases/{cases.target}/",
        "write": "/write/",
        "receipt": receipt.removeprefix(base),
        "data": "/data/",
        "case-missing": f"/cases/{case_number(10**6)}/",
        "not-found": "/no-such-page/",
    }


@pytest.mark.parametrize("language", ["ko", "en"])
def test_every_public_page_is_accessible_at_both_widths_under_the_policy(
    browser, live_server, cases, axe_core, settings, language
):
    settings.SOTONG_FORM_MIN_SECONDS = 0
    base = live_server.url
    pages = public_pages(browser, base, cases)
    browser.add_cookie({"name": settings.LANGUAGE_COOKIE_NAME, "value": language})
    problems: list[str] = []
    for name, path in pages.items():
        for width, height in (DESKTOP, PHONE):
            set_viewport(browser, width, height)
            browser.get(base + path)
            where = f"{name} ({path}, {language}, {width} px)"
            if browser.find_element(By.TAG_NAME, "html").get_attribute("lang") != language:
                problems.append(f"{where}: not in the chosen language")
            if blocking := blocking_violations(browser):
                problems.append(f"{where}:\n{describe_violations(blocking)}")
            if width == PHONE[0] and (overflow := horizontal_overflow(browser)):
                widest = "\n".join(f"    {e}" for e in wide_elements(browser))
                problems.append(f"{where}: {overflow} px wider than the screen:\n{widest}")
            if refused := csp_violations(console_messages(browser)):
                problems.append(f"{where}: refused by the CSP:\n" + "\n".join(refused))
            save_screenshots(browser, f"{name}-{language}", [(width, height)])
    assert not problems, "\n".join(problems)


def test_the_accessibility_check_reports_what_it_finds(browser, live_server, directory, axe_core):
    """The axe-core check the page test relies on does see violations when there are some."""
    browser.get(live_server.url + "/accounts/login/")
    browser.execute_script(
        "document.documentElement.removeAttribute('lang');"
        "const image = document.createElement('img');"
        "image.src = 'data:image/gif;base64,R0lGODlhAQABAAAAACw=';"
        "document.querySelector('main').appendChild(image);"
    )
    with pytest.raises(AssertionError) as failure:
        assert_accessible(browser, "a spoilt sign-in page")
    report = str(failure.value)
    assert "html-has-lang (serious)" in report and "image-alt (critical)" in report
    assert "https://dequeuniversity.com/rules/axe/" in report and "\n    img" in report


def png_width(data: bytes) -> int:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">I", data[16:20])[0]


def test_screenshots_of_the_overview_and_a_case_page_are_saved(browser, live_server, cases):
    shots: dict[str, Callable[[], None]] = {
        "overview": lambda: browser.get(live_server.url + "/"),
        "case": lambda: browser.get(f"{live_server.url}/cases/{cases.answered}/"),
    }
    for name, open_page in shots.items():
        for width, _height in (PHONE, DESKTOP):
            (SCREENSHOTS / f"{name}-{width}.png").unlink(missing_ok=True)
        open_page()
        saved = save_screenshots(browser, name)
        assert [p.name for p in saved] == [f"{name}-360.png", f"{name}-1280.png"]
        assert [png_width(p.read_bytes()) for p in saved] == [360, 1280]
        assert_no_csp_violation(browser, name)
