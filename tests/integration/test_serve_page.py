"""The page of ``eventmodel serve`` in a real browser: Debian's chromium, headless, driven
by Selenium through chromium-driver. Missing browser = a failure with the install line,
never a skip. A screenshot is kept (pytest's tmp dir, and ``$EVENTMODEL_ARTIFACTS`` if set)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from eventmodel.clock import now_us
from eventmodel.log import open_log
from eventmodel.sim.cloud import SimCloud
from eventmodel.sim.faults import Faults
from eventmodel.sources.nova import NovaNormalizer
from projections.replay import history, model_at
from tests.fixtures.polling import wait_until
from tests.fixtures.serve import ServeProcess, fill_with_demo

INSTALL = "apt-get install -y chromium chromium-driver"


def _text(driver: object, element_id: str) -> str:
    """The element's text, or "" while the page has not drawn it (or is redrawing it):
    a condition to poll, never an exception before the deadline."""
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By

    try:
        found = driver.find_elements(By.ID, element_id)  # type: ignore[attr-defined]
        return found[0].text if found else ""
    except StaleElementReferenceException:
        return ""


def browser_paths() -> tuple[str, str]:
    """chromium and chromedriver, or fail saying how to install them."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if not chromium or not driver:
        pytest.fail(f"the page tests need Debian's chromium and chromium-driver (found chromium={chromium}, "
                    f"chromedriver={driver}): {INSTALL}", pytrace=False)
    return chromium, driver


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    chromium, driver_path = browser_paths()
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    opts = Options()
    opts.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1500,1000", "--lang=en-US"):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(driver_path), options=opts)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture(scope="module")
def page_log(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('page') / 'events.db'}"
    fill_with_demo(url, hosts=24, instances=150, duration=1.5, seed=11)
    return url


def _save(driver: object, tmp_path: Path, name: str) -> Path:
    path = tmp_path / name
    driver.save_screenshot(str(path))  # type: ignore[attr-defined]
    artifacts = os.environ.get("EVENTMODEL_ARTIFACTS")
    if artifacts:
        Path(artifacts).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(artifacts) / name)
    return path


def test_cluster_view_search_and_history(page_log: str, browser: object, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    d = browser
    log = open_log(page_log)
    model = model_at(log)
    with ServeProcess(page_log) as serve:
        serve.wait_ready()
        d.get(serve.url + "/")  # type: ignore[attr-defined]
        find = d.find_element  # type: ignore[attr-defined]
        nodes = str(len(model.compute_nodes()))
        wait_until(lambda: find(By.ID, "cluster").get_attribute("data-node-count") == nodes, 30,
                   f"the cluster view to draw {nodes} nodes")
        assert find(By.ID, "node-count").text.startswith(f"{nodes} nodes")
        assert find(By.ID, "position").text == str(log.end())
        wait_until(lambda: _text(d, "state") == "ready", 30, "the page to say ready")
        assert not find(By.ID, "logout").is_displayed()  # no token, no session: nothing to log out of

        # an instance with a history of several records, found by its name
        inst = max(model.instances().values(), key=lambda i: (len(list(history(log, i.uuid))), i.uuid))
        records = list(history(log, inst.uuid))
        box = find(By.ID, "search")
        box.send_keys(inst.name)
        hit = wait_until(lambda: [li for li in d.find_elements(By.CSS_SELECTOR, "#results li")  # type: ignore[attr-defined]
                                  if inst.uuid in li.text], 30, "the search to list the instance")
        hit[0].click()
        wait_until(lambda: inst.name in _text(d, "instance-title"), 30, "the instance's details")
        events = wait_until(lambda: d.find_elements(By.CSS_SELECTOR, "#history-events li")  # type: ignore[attr-defined]
                            if len(d.find_elements(By.CSS_SELECTOR, "#history-events li")) == len(records)  # type: ignore[attr-defined]
                            else None, 30, f"a timeline of {len(records)} records")
        assert records[-1].envelope.type in events[0].text  # newest first
        assert len(d.find_elements(By.CSS_SELECTOR, "#history svg circle")) == len(records)  # type: ignore[attr-defined]
        shot = _save(d, tmp_path, "serve-page.png")
        assert shot.stat().st_size > 20_000

        # a node by name: Enter opens the first result
        node = inst.node or max(model.compute_nodes(), key=lambda n: (model.node_instance_count(n), n))
        box.clear()
        box.send_keys(node.split(".")[0], Keys.ENTER)
        wait_until(lambda: node in _text(d, "details") and d.find_elements(  # type: ignore[attr-defined]
            By.CSS_SELECTOR, "#node-instances li"), 30, "the node's details and instances")
        assert len(d.find_elements(By.CSS_SELECTOR, "#node-instances li")) == min(  # type: ignore[attr-defined]
            100, model.node_instance_count(node))

        # the page follows the log without a reload
        sim = SimCloud(3, 10, seed=5, faults=Faults.kind(), start_time_us=now_us())
        normalizer = NovaNormalizer()
        fresh = [e for raw in sim.step(30) + sim.flush()
                 for e in normalizer.normalize(raw, recorded_at=now_us()).events]
        log.append(fresh)
        end = str(log.end())
        wait_until(lambda: _text(d, "position") == end, 30, f"the page to show position {end}")
        wait_until(lambda: f"at position {end}" in _text(d, "node-count"), 30, "the cluster view to redraw")
        severe = [e for e in d.get_log("browser") if e["level"] == "SEVERE"]  # type: ignore[attr-defined]
        assert not severe, severe


def test_a_cloud_supplied_key_never_leads_the_page_out_of_its_route(page_log: str, browser: object) -> None:
    """A uuid like ``../../export`` (from a notification or a sync) is one encoded path segment:
    the page asks for that key's history, never for /api/export; ``..`` is not asked for."""
    from selenium.webdriver.common.by import By

    d = browser
    with ServeProcess(page_log) as serve:
        serve.wait_ready()
        d.get(serve.url + "/")  # type: ignore[attr-defined]
        find = d.find_element  # type: ignore[attr-defined]
        wait_until(lambda: find(By.ID, "state").text == "ready", 30, "the page to say ready")
        d.execute_script("""
            window.__fetched = [];
            const real = window.fetch;
            window.fetch = (p, o) => { window.__fetched.push(new URL(p, location.href).pathname); return real(p, o); };
            showInstance("../../export");
        """)  # type: ignore[attr-defined]
        wait_until(lambda: "no records on the log" in find(By.ID, "details").text, 30,
                   "the page to say the key has no records")
        fetched = d.execute_script("return window.__fetched.slice()")  # type: ignore[attr-defined]
        assert "/api/instances/..%2F..%2Fexport" in fetched and "/api/history/instance/..%2F..%2Fexport" in fetched, fetched
        assert not [p for p in fetched if p.startswith("/api/export")], fetched

        d.execute_script("window.__fetched = []; showNode('..');")  # type: ignore[attr-defined]
        wait_until(lambda: "cannot look up" in find(By.ID, "details").text, 30, "the page to refuse a dot key")
        d.execute_script("showInstance('.');")  # type: ignore[attr-defined]
        wait_until(lambda: "no records on the log" in find(By.ID, "details").text, 30, "the page to refuse '.'")
        fetched = d.execute_script("return window.__fetched.slice()")  # type: ignore[attr-defined]
        assert not [p for p in fetched if p.rstrip("/") in ("/api", "/api/nodes", "/api/instances")], fetched


def test_a_signed_in_page_shows_log_out_which_ends_the_session(page_log: str, browser: object, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    d = browser
    token = "page-logout-token-0123456789"
    token_file = tmp_path / "token"
    token_file.write_text(token)
    token_file.chmod(0o600)
    with ServeProcess(page_log, "--token-file", str(token_file)) as serve:
        serve.headers = {"authorization": f"Bearer {token}"}
        serve.wait_ready()
        d.get(serve.url + "/")  # type: ignore[attr-defined]
        find = d.find_element  # type: ignore[attr-defined]
        wait_until(lambda: d.find_elements(By.NAME, "token"), 30, "the sign-in form")  # type: ignore[attr-defined]
        find(By.NAME, "token").send_keys(token)
        find(By.CSS_SELECTOR, "input[type=submit]").click()
        button = wait_until(lambda: [b for b in d.find_elements(By.CSS_SELECTOR, "#logout button")  # type: ignore[attr-defined]
                                     if b.is_displayed()], 30, "the Log out button")[0]
        assert button.text == "Log out"
        wait_until(lambda: _text(d, "state") == "ready", 30, "the page to say ready")
        shot = _save(d, tmp_path, "serve-page-logout.png")
        assert shot.stat().st_size > 20_000
        button.click()
        wait_until(lambda: d.find_elements(By.NAME, "token"), 30, "the sign-in form again")  # type: ignore[attr-defined]
        assert not d.get_cookie("eventmodel_session")  # type: ignore[attr-defined]
        d.get(serve.url + "/api/status")  # type: ignore[attr-defined]
        assert "unauthorized" in d.page_source or "sign in" in d.page_source.lower()  # type: ignore[attr-defined]
