"""Shared test fixtures: the Seoul directory loaded into the real test database, officers
of each role, and a way to run queued jobs exactly as a worker would."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from django.core.cache import caches
from django.test import Client

from sotong import browser_testing
from sotong.directory.loading import load_directory
from sotong.directory.models import Officer, Unit
from sotong.inbox.services import create_connector_token
from sotong.triage.services import forget_duplicates, forget_rules

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture(autouse=True)
def fast_passwords(settings):
    # Password hashing is deliberately slow; tests sign in dozens of people.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def fresh_hook_targets():
    # Each test's database starts anew: no webhook target cached from another test.
    from sotong.channels.selectors import forget_hook_targets

    forget_hook_targets()
    yield
    forget_hook_targets()


@pytest.fixture(autouse=True)
def no_pages_from_another_test():
    """Each test starts without another test's pages or directory names in the per-process
    cache (`caches["local"]`: the portal's micro-cache). A live server shares this process,
    and outside a test's transaction its pages are cached as the site's are."""
    caches["local"].clear()
    yield
    caches["local"].clear()


@pytest.fixture
def directory(db):
    forget_rules()
    forget_duplicates()
    report = load_directory()
    yield report
    forget_rules()
    forget_duplicates()


def make_officer(username: str, role: str, unit_code: str | None) -> Officer:
    unit = Unit.objects.get(code=unit_code) if unit_code else None
    officer = Officer.objects.create_user(
        username=username, password="pw-" + username, role=role, unit=unit
    )
    return officer


@pytest.fixture
def people(directory) -> dict[str, Officer]:
    return {
        "center": make_officer("center", Officer.Role.CENTER, "center"),
        "jongno": make_officer("jongno", Officer.Role.OFFICER, "district-jongno"),
        "jongno_chief": make_officer("jongno-chief", Officer.Role.SUPERVISOR, "district-jongno"),
        "mapo": make_officer("mapo", Officer.Role.OFFICER, "district-mapo"),
        "transport": make_officer("transport", Officer.Role.OFFICER, "transport"),
        "safety": make_officer("safety", Officer.Role.OFFICER, "safety"),
        "safety_chief": make_officer("safety-chief", Officer.Role.SUPERVISOR, "safety"),
    }


def client_for(officer: Officer) -> Client:
    client = Client()
    client.force_login(officer)
    return client


@pytest.fixture
def token(directory) -> str:
    return create_connector_token("test-connector")[1]


def shared_data(name: str) -> Path:
    """A dataset from ../shared/data, or a skip saying why (CI makes its absence fatal)."""
    path = SHARED_DATA / name
    if not path.exists():
        pytest.skip(f"{path} is absent: the shared datasets live beside the repository")
    return path


# In CI a test must not pass by skipping for want of a real part the suite needs: with the
# variable set to 1, a skip whose reason names the part fails instead.
REQUIRED_PARTS = (
    ("SOTONG_REQUIRE_SHARED_DATA", ("shared/data", "shared data"), "shared data"),
    ("SOTONG_REQUIRE_MAIL_SERVER", ("mail server absent",), "a local mail server"),
    ("SOTONG_REQUIRE_BROWSER", ("chromium",), "a browser (chromium, chromium-driver)"),
    ("SOTONG_REQUIRE_BROWSER", ("axe-core",), "axe-core (npm ci)"),
)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if not report.skipped:
        return
    reason = (
        str(report.longrepr[-1]) if isinstance(report.longrepr, tuple) else str(report.longrepr)
    )
    for variable, markers, part in REQUIRED_PARTS:
        if os.environ.get(variable) == "1" and any(m in reason for m in markers):
            report.outcome = "failed"
            report.longrepr = f"{part} required in CI ({variable}=1) but absent: {reason}"
            return


# The browser -------------------------------------------------------------------------------
# One headless Chromium for the whole run (starting one costs about a second); each test gets
# it back as a fresh visitor. A missing browser or axe-core is a skip here and a failure in CI
# (REQUIRED_PARTS).


@pytest.fixture(scope="session")
def chromium():
    if not browser_testing.chromium_installed():
        pytest.skip("chromium and chromium-driver (Debian packages) are not installed")
    driver = browser_testing.start_chromium()
    yield driver
    driver.quit()


@pytest.fixture
def browser(chromium):
    browser_testing.reset(chromium)
    yield chromium


@pytest.fixture(scope="session")
def axe_core() -> Path:
    script = browser_testing.AXE_SCRIPT
    if not script.exists():
        pytest.skip(f"axe-core is not installed ({script} absent): `make test` runs npm ci")
    return script
