"""The incident page in a real browser: Debian's Chromium, headless, driven by Selenium.

One browser for the module. The incident is written through the real stores and bundle
writer (tests/support/incident_page.py); approving runs the action for real: a Celery worker
calls the demo EAFIX gateway (the simulator) and notes the outcome on the fake PagerDuty, as
in tests/integration/test_actions.py, whose world and worker this module reuses.
Screenshots land in var/screenshots/ (the latest ones are copied into docs/screenshots/).
"""

from __future__ import annotations

import hashlib
import shutil
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import redis
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver
from werkzeug.serving import make_server

from tasks.evidence.approval_links import approval_link
from tasks.runtime import Runtime
from tasks.settings import Secret
from tests.fakes.pagerduty import FakePagerDuty
from tests.integration.test_actions import (  # noqa: F401 - fixtures, shared with that module
    ALLOWED,
    World,
    action_worker,
    world,
)
from tests.support import PROJECT, PUBLIC_URL, QuietHandler, post_alert, sample_payload, wait_for
from tests.support.incident_page import MadeIncident, make_incident
from webhooks import create_app
from webhooks.incident_page import CSRF_COOKIE, _csrf_token

SCREENSHOTS = PROJECT / "var" / "screenshots"
SIZES = {"desktop": (1366, 768, False), "phone": (390, 844, True)}
CONSOLE_TOKEN = "console-browser-5d2c"
READER_TIME_ZONE = "Europe/Zurich"  # the reader's local time differs from UTC, as it may at 3 a.m.


@pytest.fixture(scope="module")
def browser() -> Iterator[WebDriver]:
    chromium = shutil.which("chromium")
    driver_path = shutil.which("chromedriver")
    if not chromium or not driver_path:
        pytest.fail("chromium and chromium-driver are missing: run scripts/install-test-services")
    options = webdriver.ChromeOptions()
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage"):
        options.add_argument(argument)
    options.binary_location = chromium
    driver = webdriver.Chrome(options=options, service=Service(driver_path))
    driver.execute_cdp_cmd("Emulation.setTimezoneOverride", {"timezoneId": READER_TIME_ZONE})
    size(driver, "desktop")
    yield driver
    driver.quit()


def size(driver: WebDriver, name: str) -> None:
    """Make the viewport exactly the size named (the window's own chrome left out)."""
    width, height, mobile = SIZES[name]
    driver.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile},
    )


@pytest.fixture(scope="module")
def base_url(world: World) -> Iterator[str]:  # noqa: F811
    app = create_app(world.settings(console_token=Secret(CONSOLE_TOKEN)))
    server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=QuietHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


@pytest.fixture(scope="module")
def runtime(world: World) -> Runtime:  # noqa: F811
    client = redis.Redis.from_url(world.env["RESPONDER_REDIS_URL"])
    for key in client.scan_iter("responder:*"):  # as the redis_client fixture does
        client.delete(key)
    return Runtime(world.settings())


def new_incident(
    runtime: Runtime, fake_pagerduty: FakePagerDuty, title: str, **changes: object
) -> MadeIncident:
    """Open an incident on the fake PagerDuty and write what the worker would have of it."""
    incident_id = fake_pagerduty.add_incident(title)
    return make_incident(runtime, incident_id, datetime.now(UTC), **changes)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def made(runtime: Runtime, fake_pagerduty: FakePagerDuty) -> MadeIncident:
    return new_incident(runtime, fake_pagerduty, "incident page", update_in=timedelta(minutes=40))


def text_of(driver: WebDriver, css: str) -> str:
    """Return an element's text, read again if the page replaced it meanwhile."""
    try:
        return driver.find_element(By.CSS_SELECTOR, css).text
    except StaleElementReferenceException:
        return driver.find_element(By.CSS_SELECTOR, css).text


def test_the_page_says_priority_why_market_status_and_deadlines_above_the_fold(
    browser: WebDriver, base_url: str, made: MadeIncident
) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for name in SIZES:
        size(browser, name)
        browser.get(base_url + made.path)
        wait_for(lambda: text_of(browser, "#next-deadline .left"), what="the countdown")
        browser.save_screenshot(str(SCREENSHOTS / f"incident-{name}.png"))
        # At a glance: everything of the header and the glance cards inside the first screen.
        height = SIZES[name][1]
        above = [".priority .badge", "#status", "#next-deadline", ".glance .card"]
        if name == "desktop":  # a laptop sees the deadlines and the services too
            above += ["#deadline-resolve", "#services ul"]
        for css in above:
            box = browser.find_element(By.CSS_SELECTOR, css).rect
            assert box["y"] + min(box["height"], 40) <= height, (name, css, box)
    size(browser, "desktop")
    assert text_of(browser, ".priority .badge") == "P1"
    assert "PagerDuty: P2" in text_of(browser, ".priority")
    assert "Acknowledged, by Dana Oncall" in text_of(browser, "#status")
    glance = text_of(browser, ".glance").lower()
    assert "market" in glance and "trading impact" in glance and "why p1" in glance
    # The reader's local time (Zurich: CET) beside UTC.
    assert "CET" in text_of(browser, "#deadline-resolve") or "GMT+1" in text_of(
        browser, "#deadline-resolve"
    )
    assert "UTC" in text_of(browser, "#deadline-resolve")


def test_countdowns_move_and_a_deadline_that_passes_turns_red_and_says_overdue(
    browser: WebDriver, base_url: str, runtime: Runtime, fake_pagerduty: FakePagerDuty
) -> None:
    made = new_incident(runtime, fake_pagerduty, "countdown", update_in=timedelta(seconds=6))
    browser.get(base_url + made.path)
    row = "#deadline-next_update"
    first = text_of(browser, f"{row} .left")
    assert first.startswith("in ")
    wait_for(lambda: text_of(browser, f"{row} .left") != first, timeout=120, what="a tick")
    wait_for(
        lambda: "overdue" in text_of(browser, f"{row} .left"), timeout=120, what="overdue words"
    )
    cls = browser.find_element(By.CSS_SELECTOR, row).get_attribute("class")
    assert "deadline-overdue" in cls
    red = browser.find_element(By.CSS_SELECTOR, f"{row} .left").value_of_css_property("color")
    assert red.startswith("rgba(179, 38, 30"), red  # --red, not the ink's colour
    assert text_of(browser, f"{row} .left").startswith("⚠ ")  # a mark besides the colour
    running = browser.find_element(By.CSS_SELECTOR, "#deadline-resolve .left")
    assert not running.value_of_css_property("color").startswith("rgba(179, 38, 30")


def test_the_failed_collectors_evidence_comes_first_with_its_errors_and_the_plot_loads(
    browser: WebDriver, base_url: str, made: MadeIncident
) -> None:
    browser.get(base_url + made.path + "#evidence")
    collectors = browser.find_elements(By.CSS_SELECTOR, "#evidence article.collector")
    assert collectors[0].get_attribute("id") == "collector-docker"
    assert collectors[0].text.startswith("FAILED Containers")
    marked = [m.text for m in collectors[0].find_elements(By.CSS_SELECTOR, "pre.log mark")]
    assert marked and "ERROR order router lost" in marked[0]
    metrics = browser.find_element(By.ID, "collector-prometheus")
    metrics.find_element(By.TAG_NAME, "summary").click()  # a real click opens <details>
    image = metrics.find_element(By.TAG_NAME, "img")
    loaded = "return arguments[0].complete && arguments[0].naturalWidth"
    assert wait_for(lambda: browser.execute_script(loaded, image), what="the plot") > 100


def test_the_timeline_shows_the_escalation(
    browser: WebDriver, base_url: str, made: MadeIncident
) -> None:
    browser.get(base_url + made.path + "#timeline")
    entries = browser.find_elements(By.CSS_SELECTOR, "ol.timeline li.kind-escalation")
    assert [e.find_element(By.CSS_SELECTOR, ".what").text for e in entries] == [
        "escalated to level 2"
    ]
    assert entries[0].find_element(By.CSS_SELECTOR, ".kind").text == "ESCALATION"
    kinds = browser.find_elements(By.CSS_SELECTOR, "ol.timeline li")
    assert any("proposed: stop-trading" in k.text for k in kinds)


def personal(world: World, made: MadeIncident, email: str) -> str:  # noqa: F811
    """Return `email`'s personal approval link to the incident's page (a path)."""
    expires = int((datetime.now(UTC) + timedelta(minutes=30)).timestamp())
    secret = world.settings().link_secret.reveal()
    return approval_link("", made.incident_id, email, expires, secret)


def test_the_approval_form_is_usable_from_the_keyboard(
    browser: WebDriver,
    base_url: str,
    made: MadeIncident,
    world: World,  # noqa: F811
) -> None:
    browser.get(base_url + personal(world, made, ALLOWED) + "#actions")
    approve = browser.find_element(By.CSS_SELECTOR, f"#proposal-{made.proposal_id} .approve")
    browser.execute_script("arguments[0].focus()", approve)
    focused = browser.switch_to.active_element
    assert (focused.tag_name, focused.text) == ("button", f"Approve as {ALLOWED}")
    focused.send_keys(Keys.TAB)
    assert browser.switch_to.active_element.text == "Deny"


def test_a_visitor_with_the_page_link_sees_no_form_cannot_post_one_and_learns_no_approver(
    browser: WebDriver,
    base_url: str,
    runtime: Runtime,
    fake_pagerduty: FakePagerDuty,
    world: World,  # noqa: F811
) -> None:
    made = new_incident(runtime, fake_pagerduty, "plain link")
    browser.get(base_url + made.path + "#actions")
    assert not browser.find_elements(By.CSS_SELECTOR, "form.decide")
    assert "it approves nothing" in text_of(browser, "#how-to-approve")
    # The form's fields posted by hand from this browser (its CSRF cookie, a valid token).
    cookie = browser.get_cookie(CSRF_COOKIE)["value"]  # type: ignore[index]
    secret = world.settings().link_secret.reveal()
    token = _csrf_token(secret, f"incident/{made.incident_id}", cookie)
    action = made.path.replace("?", f"/proposals/{made.proposal_id}?", 1)
    posted = browser.execute_async_script(
        """
        var done = arguments[arguments.length - 1];
        var body = new URLSearchParams({approver: arguments[1], decision: "approve",
                                        csrf: arguments[2]});
        fetch(arguments[0], {method: "POST", body: body, credentials: "same-origin",
                             redirect: "manual"})
          .then(function (r) { return r.text().then(function (t) { done([r.status, t]); }); });
        """,
        action,
        ALLOWED,
        token,
    )
    assert posted[0] == 403
    for said in (posted[1], browser.page_source):
        assert ALLOWED not in said and "PALLOWED" not in said
    record = runtime.redis.get(f"responder:action:{made.proposal_id}")
    assert b'"status": "proposed"' in record  # type: ignore[operator]


def test_the_allowed_persons_own_link_approves_in_chromium_and_the_action_runs_once(
    browser: WebDriver,
    base_url: str,
    made: MadeIncident,
    world: World,  # noqa: F811
    action_worker: None,  # noqa: F811
) -> None:
    world.sim.trading_stopped = False
    world.sim.emergency_calls.clear()
    form = f"#proposal-{made.proposal_id} form.decide"
    # Someone with a link of their own whom the action does not allow: refused, named nobody.
    browser.get(base_url + personal(world, made, "intruder@eafix.example") + "#actions")
    assert "intruder@eafix.example" in text_of(browser, "#signed-in")
    browser.find_element(By.CSS_SELECTOR, f"{form} button.approve").click()
    wait_for(lambda: "said=refused" in browser.current_url, what="the refusal")
    assert "Refused: not allowed. Nothing runs." in text_of(browser, "#actions .said")
    assert "not allowed: intruder@eafix.example may not approve stop-trading" in text_of(
        browser, f"#proposal-{made.proposal_id} .refusal"
    )
    assert ALLOWED not in browser.page_source and "PALLOWED" not in browser.page_source
    # The allowed person opens their own link and approves: it runs, once.
    browser.get(base_url + personal(world, made, ALLOWED) + "#actions")
    assert f"Signed in as {ALLOWED}" in text_of(browser, "#signed-in")
    browser.find_element(By.CSS_SELECTOR, f"{form} button.approve").click()
    wait_for(lambda: "said=approved" in browser.current_url, what="the approval")
    outcome = f"#outcome-{made.proposal_id}"
    wait_for(lambda: text_of(browser, outcome).startswith("Done"), timeout=120, what="the outcome")
    assert "Verification passed." in text_of(browser, outcome)
    assert text_of(browser, f"#pstatus-{made.proposal_id}") == "Done"
    assert not browser.find_elements(By.CSS_SELECTOR, f"{form}:not([hidden])")
    assert world.sim.trading_stopped and world.sim.emergency_calls == ["stop-trading"]
    # Back and reload: the form is gone, nothing runs again.
    browser.refresh()
    assert not browser.find_elements(By.CSS_SELECTOR, form)
    assert world.sim.emergency_calls == ["stop-trading"]


def test_a_real_run_through_the_worker_links_its_page_from_the_evidence_note(
    browser: WebDriver,
    base_url: str,
    world: World,  # noqa: F811
    action_worker: None,  # noqa: F811
    fake_pagerduty: FakePagerDuty,
) -> None:
    # Alertmanager's alert, the fake PagerDuty's incident, the real pipeline on the worker.
    payload = sample_payload(groupKey='{}:{alertname="SignalLatencyHigh", page="browser"}')
    incident = fake_pagerduty.add_incident(hashlib.sha256(payload["groupKey"].encode()).hexdigest())
    world.sim.inject("signal-latency")
    try:
        assert post_alert(base_url, payload).status_code == 202
        notes = wait_for(
            lambda: (
                len(fake_pagerduty.notes_for(incident)) >= 2 and fake_pagerduty.notes_for(incident)
            ),
            timeout=45,
            what="the evidence note",
        )
    finally:
        world.sim.clear()
    [line] = [n for n in notes[1]["content"].splitlines() if n.startswith("Incident page: ")]
    browser.get(line.removeprefix("Incident page: ").replace(PUBLIC_URL, base_url))
    assert "SignalLatencyHigh" in text_of(browser, "h1")
    states = [
        a.get_attribute("class").split()[-1]
        for a in browser.find_elements(By.CSS_SELECTOR, "#evidence article.collector")
    ]
    assert states[0] in ("collector-failed", "collector-timeout"), states
    order = ["collector-failed", "collector-timeout", "collector-ok", "collector-skipped"]
    assert states == sorted(states, key=order.index)
    assert "signal-generator" in text_of(browser, "#services")


def test_the_list_page_opens_with_basic_auth_and_links_each_incidents_page(
    browser: WebDriver, base_url: str, made: MadeIncident
) -> None:
    size(browser, "desktop")
    browser.get(base_url.replace("http://", f"http://oncall:{CONSOLE_TOKEN}@") + "/incidents")
    browser.save_screenshot(str(SCREENSHOTS / "incidents-desktop.png"))
    link = browser.find_element(By.CSS_SELECTOR, f"a[href^='/incidents/{made.incident_id}?']")
    assert "P1" in browser.find_element(By.CSS_SELECTOR, "tbody tr").text
    link.click()
    assert text_of(browser, ".priority .badge") == "P1"
    assert "Acknowledged, by Dana Oncall" in text_of(browser, "#status")


def test_a_tampered_or_expired_link_opens_nothing(
    browser: WebDriver, base_url: str, made: MadeIncident
) -> None:
    browser.get(base_url + made.path.replace("sig=", "sig=00"))
    assert text_of(browser, "h1") == "403"
    assert "signature does not match" in text_of(browser, "main")
    assert "Dana Oncall" not in browser.page_source
