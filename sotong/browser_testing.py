"""What the browser tests use to look at a page as a person would: Debian's headless Chromium
started through Selenium, its console read for Content-Security-Policy violations, axe-core
(from node_modules/, installed by `make test`) run for WCAG 2.1 AA, and full-page screenshots
at a phone's and a desktop's width saved under var/screenshots/."""

from __future__ import annotations

import base64
import shutil
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from selenium import webdriver
from selenium.webdriver.chrome.service import Service

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
AXE_SCRIPT = ROOT / "node_modules" / "axe-core" / "axe.min.js"
SCREENSHOTS = ROOT / "var" / "screenshots"

# WCAG 2.0 and 2.1, levels A and AA: what issue 7 asks the public pages to meet.
AXE_TAGS = ("wcag2a", "wcag2aa", "wcag21a", "wcag21aa")
BLOCKING_IMPACTS = ("serious", "critical")

DESKTOP = (1280, 900)
PHONE = (360, 800)


def chromium_installed() -> bool:
    return Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()


def start_chromium() -> webdriver.Chrome:
    """Headless Chromium as a Korean visitor's browser, keeping its console log for reading."""
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in [
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--hide-scrollbars",
        f"--window-size={DESKTOP[0]},{DESKTOP[1]}",
        "--lang=ko",
    ]:
        options.add_argument(flag)
    # The site follows Accept-Language until the visitor picks a language.
    options.add_experimental_option("prefs", {"intl.accept_languages": "ko-KR,ko"})
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.implicitly_wait(0)
    driver.set_script_timeout(60)
    set_viewport(driver, *DESKTOP)
    return driver


def reset(driver: webdriver.Chrome) -> None:
    """A fresh visitor for the next test: no cookies, desktop size, an empty console."""
    driver.get("about:blank")
    driver.execute_cdp_cmd("Network.clearBrowserCookies", {})
    set_viewport(driver, *DESKTOP)
    console_messages(driver)


def set_viewport(driver: webdriver.Chrome, width: int, height: int) -> None:
    """The page's viewport exactly this size (the window's own frame does not count)."""
    driver.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
    )


# The console ---------------------------------------------------------------------------


def console_messages(driver: webdriver.Chrome) -> list[dict[str, Any]]:
    """Everything the console received since the last call (reading empties it)."""
    return list(driver.get_log("browser"))


def csp_violations(messages: Iterable[dict[str, Any]]) -> list[str]:
    return [m["message"] for m in messages if "Content Security Policy" in m.get("message", "")]


def assert_no_csp_violation(driver: webdriver.Chrome, where: str = "") -> None:
    """Fail when the console reports anything the Content-Security-Policy refused."""
    refused = csp_violations(console_messages(driver))
    assert not refused, f"CSP violations on {where or driver.current_url}:\n" + "\n".join(refused)


# Accessibility -------------------------------------------------------------------------

_RUN_AXE = """
const done = arguments[arguments.length - 1];
axe.run(document, {runOnly: {type: "tag", values: arguments[0]}, resultTypes: ["violations"]})
  .then((results) => done(results.violations.map((v) => ({
    id: v.id, impact: v.impact, help: v.help, helpUrl: v.helpUrl,
    targets: v.nodes.map((n) => n.target.join(" ")),
  }))))
  .catch((error) => done({error: String(error)}));
"""


def axe_violations(driver: webdriver.Chrome, tags: Sequence[str] = AXE_TAGS) -> list[dict]:
    """Run axe-core on the page shown and return its violations (id, impact, help, helpUrl,
    targets). axe is injected through WebDriver, which the page's CSP does not govern."""
    if not driver.execute_script("return typeof window.axe === 'object'"):
        driver.execute_script(AXE_SCRIPT.read_text(encoding="utf-8"))
    result = driver.execute_async_script(_RUN_AXE, list(tags))
    if isinstance(result, dict):
        raise RuntimeError(f"axe-core failed on {driver.current_url}: {result['error']}")
    return result


def describe_violations(violations: Iterable[dict]) -> str:
    lines = []
    for v in violations:
        lines.append(f"- {v['id']} ({v['impact']}): {v['help']} — {v['helpUrl']}")
        lines.extend(f"    {target}" for target in v["targets"][:10])
        if len(v["targets"]) > 10:
            lines.append(f"    … and {len(v['targets']) - 10} more")
    return "\n".join(lines)


def blocking_violations(driver: webdriver.Chrome) -> list[dict]:
    """The page's serious and critical violations: the ones no page may have."""
    return [v for v in axe_violations(driver) if v["impact"] in BLOCKING_IMPACTS]


def assert_accessible(driver: webdriver.Chrome, where: str = "") -> None:
    """Fail, listing rule, impact, elements and help, on any serious or critical violation."""
    blocking = blocking_violations(driver)
    assert not blocking, (
        f"axe-core: serious or critical WCAG 2.1 AA violations on {where or driver.current_url}:\n"
        + describe_violations(blocking)
    )


def horizontal_overflow(driver: webdriver.Chrome) -> int:
    """How many CSS pixels the page is wider than the viewport (0 when it fits)."""
    return int(
        driver.execute_script(
            "const e = document.documentElement; return Math.max(0, e.scrollWidth - e.clientWidth);"
        )
    )


_WIDE_ELEMENTS = """
const width = document.documentElement.clientWidth;
const name = (e) => e.tagName.toLowerCase() + (e.id ? "#" + e.id : "")
  + Array.from(e.classList).map((c) => "." + c).join("");
const wide = (e) => e.getBoundingClientRect().right > width + 0.5;
return Array.from(document.body.querySelectorAll("*"))
  .filter((e) => wide(e) && !(e.parentElement && wide(e.parentElement)))
  .slice(0, 8)
  .map((e) => {
    const path = [];
    for (let n = e; n && n !== document.body; n = n.parentElement) path.unshift(name(n));
    return path.join(" > ") + " (right edge " + Math.round(e.getBoundingClientRect().right) + " px)";
  });
"""


def wide_elements(driver: webdriver.Chrome) -> list[str]:
    """The outermost elements that reach past the viewport's right edge, as selector paths:
    what to fix when `horizontal_overflow` is not 0."""
    return list(driver.execute_script(_WIDE_ELEMENTS))


# Screenshots ---------------------------------------------------------------------------


def save_full_page(driver: webdriver.Chrome, path: Path) -> Path:
    """The whole page, not only the viewport, as a PNG."""
    width, height = driver.execute_script(
        "const e = document.documentElement, b = document.body;"
        "return [e.clientWidth, Math.max(e.scrollHeight, b ? b.scrollHeight : 0)];"
    )
    shot = driver.execute_cdp_cmd(
        "Page.captureScreenshot",
        {
            "format": "png",
            "captureBeyondViewport": True,
            "clip": {"x": 0, "y": 0, "width": width, "height": height, "scale": 1},
        },
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(base64.b64decode(shot["data"]))
    return path


def save_screenshots(
    driver: webdriver.Chrome, name: str, sizes: Sequence[tuple[int, int]] = (PHONE, DESKTOP)
) -> list[Path]:
    """Full-page screenshots of the page shown at each size: var/screenshots/<name>-<w>.png.
    The viewport is left at the last size."""
    saved = []
    for width, height in sizes:
        set_viewport(driver, width, height)
        saved.append(save_full_page(driver, SCREENSHOTS / f"{name}-{width}.png"))
    return saved
