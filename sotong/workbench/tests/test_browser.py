"""The pages in a real browser: Debian's headless Chromium driven by Selenium against a live
server. An officer signs in, writes an answer while the guideline check updates itself
(htmx), publishes, and the public page shows the answer masked; a citizen uses the form."""

from __future__ import annotations

from pathlib import Path

import pytest
from selenium import webdriver
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

from sotong.browser_testing import assert_no_csp_violation
from sotong.cases.models import Case
from sotong.inbox.normalize import NormalizedMessage
from sotong.inbox.services import ingest_batch
from sotong.triage.services import triage_messages

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SCREENSHOTS = Path(__file__).resolve().parents[3] / "var" / "screenshots"


def wait(browser: webdriver.Chrome, seconds: float = 10) -> WebDriverWait:
    # Elements vanish while a page navigates: keep polling rather than fail on them.
    return WebDriverWait(browser, seconds, ignored_exceptions=(WebDriverException,))


def sign_in(browser: webdriver.Chrome, base: str, username: str) -> None:
    browser.get(f"{base}/accounts/login/")
    browser.find_element(By.NAME, "username").send_keys(username)
    browser.find_element(By.NAME, "password").send_keys("pw-" + username)
    browser.find_element(By.CSS_SELECTOR, "main form button[type=submit]").click()
    wait(browser).until(ec.url_contains("/work/"))


def test_officer_answers_with_live_guideline_check_and_public_sees_it_masked(
    browser, live_server, people
):
    people["jongno"].phone = "02-2148-1234"
    people["jongno"].save()
    new = ingest_batch(
        [
            NormalizedMessage(
                channel="x",
                account="@seoul_mayor",
                external_id="b1",
                text="종로구 창신동 골목 보안등이 꺼졌어요. 고쳐주세요. 제 번호 010-2222-3333",
            )
        ]
    )
    triage_messages([m.pk for m in new])
    case = Case.objects.get()
    base = live_server.url

    sign_in(browser, base, "jongno")
    browser.get(f"{base}/work/inbox/")
    browser.find_element(By.LINK_TEXT, case.number).click()
    textarea = wait(browser).until(ec.presence_of_element_located((By.ID, "answer-text")))
    # The check runs on load: every element is missing for an empty answer.
    wait(browser).until(ec.text_to_be_present_in_element((By.ID, "guideline"), "작성"))
    textarea.send_keys("확인했습니다.")
    wait(browser).until(ec.presence_of_element_located((By.CSS_SELECTOR, "#guideline li.missing")))
    textarea.clear()
    textarea.send_keys(
        "소중한 의견 감사합니다. 말씀하신 창신동 골목 보안등 고장에 대하여 현장을 확인하였으며 "
        "11월 30일까지 교체할 예정입니다. 문의사항은 종로구청(02-2148-1234)으로 연락주시기 바랍니다."
    )
    wait(browser).until(lambda b: not b.find_elements(By.CSS_SELECTOR, "#guideline li.missing"))
    assert len(browser.find_elements(By.CSS_SELECTOR, "#guideline li.ok")) >= 4
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(SCREENSHOTS / "case-answer.png"))
    browser.find_element(By.CSS_SELECTOR, "form[action$='/draft/'] button[type=submit]").click()
    wait(browser).until(
        ec.presence_of_element_located((By.CSS_SELECTOR, "form[action$='/publish/']"))
    )
    publish = browser.find_element(By.CSS_SELECTOR, "form[action$='/publish/'] button[type=submit]")
    publish.click()
    # "답변 작성" (drafted) already holds "답변": wait for the page to change first.
    wait(browser).until(ec.staleness_of(publish))
    wait(browser).until(ec.text_to_be_present_in_element((By.TAG_NAME, "h1"), "답변"))
    assert_no_csp_violation(browser)

    browser.delete_all_cookies()
    browser.get(f"{base}/cases/{case.number}/")
    body = browser.find_element(By.TAG_NAME, "main").text
    assert "보안등" in body and "교체할 예정" in body
    assert "010-2222-3333" not in body and "[전화번호]" in body
    browser.save_screenshot(str(SCREENSHOTS / "public-case.png"))


def test_citizen_writes_and_gets_a_receipt_in_both_languages(
    browser, live_server, directory, settings
):
    settings.SOTONG_FORM_MIN_SECONDS = 0  # a test types faster than a person
    base = live_server.url
    browser.get(f"{base}/write/")
    assert browser.find_element(By.TAG_NAME, "html").get_attribute("lang") == "ko"
    browser.find_element(By.NAME, "text").send_keys(
        "마포구 합정역 앞 불법주차 단속해주세요 <b>급해요</b>"
    )
    browser.find_element(By.CSS_SELECTOR, "main form button[type=submit]").click()
    wait(browser).until(ec.url_contains("/receipt/"))
    main = browser.find_element(By.TAG_NAME, "main")
    assert "<b>급해요</b>" in main.text  # shown as text, not markup
    assert not main.find_elements(By.TAG_NAME, "b")
    browser.find_element(By.CSS_SELECTOR, ".lang a[hreflang=en]").click()
    wait(browser).until(lambda b: b.find_element(By.TAG_NAME, "html").get_attribute("lang") == "en")
    assert "We received your message" in browser.find_element(By.TAG_NAME, "main").text
