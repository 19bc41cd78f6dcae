"""The app in a real browser: `mpclr app` (Voilà) on 127.0.0.1 with a token, Debian's Chromium driven
headless by Playwright, as tests/notebooks/test_browser.py does (never `playwright install`).

One server for the module. The workshop page: a step of the key ceremony with the bytes it sent, then a
key holder toggled off turns the decryption into noise. The study page: breast cancer in 3 folds, run to
the end (a second click starts nothing), the AUC shown checked against the downloaded JSON record. An
uploaded malformed CSV: the loader's error naming line and column, under the file's own name. When the
server stops, the kernels' upload folders are gone.

Screenshots go to test-artifacts/; to refresh the README's picture:
    MPCLR_README_SCREENSHOT=notebooks/img/app-study.png .venv/bin/python -m pytest tests/app/test_pages.py
"""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mpclr.app.sources import PREFIX

from ..notebooks.test_browser import (
    ARTIFACTS,
    CHROMIUM,
    FLAGS,
    _free_port,
    _small_png,
    stop_server,
    wait_until_serving,
)

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(
    not Path(CHROMIUM).exists(), reason=f"{CHROMIUM} is missing: apt-get install -y chromium"
)


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    """`python -m mpclr.cli app` with its own Jupyter settings and temporary folder (where uploads go)."""
    tmp = tmp_path_factory.mktemp("app")
    (tmp / "tmp").mkdir()
    port, token = _free_port(), secrets.token_hex(16)
    env = {
        **os.environ,
        "TMPDIR": str(tmp / "tmp"),
        "JUPYTER_CONFIG_DIR": str(tmp / "cfg"),
        "JUPYTER_DATA_DIR": str(tmp / "data"),
        "JUPYTER_RUNTIME_DIR": str(tmp / "rt"),
    }
    log = open(tmp / "voila.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "mpclr.cli", "app", "--port", str(port), "--token", token,
                             "--cull-idle", "2"],
                            cwd=tmp, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    wait_until_serving(proc, f"{url}/voila/static/voila.js?token={token}", tmp / "voila.log", "mpclr app")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        try:
            yield url, token, tmp, browser
        finally:
            browser.close()
    stop_server(proc, grace=30)  # Voilà shuts its kernels down; each removes its upload folder as it exits
    log.close()
    left = list((tmp / "tmp").glob(f"{PREFIX}*"))
    assert left == [], f"upload folders left after the server stopped: {left}"


def _page(browser, name: str, url: str, token: str):
    ARTIFACTS.mkdir(exist_ok=True)
    page = browser.new_page(viewport={"width": 1400, "height": 1100}, accept_downloads=True)
    page.set_default_timeout(60_000)
    page.goto(f"{url}/voila/render/{name}.ipynb?token={token}")
    return page


# Voilà runs the whole notebook before its widgets render: on a 2-core machine at load 16 the first
# widget took over 60 s to appear ("Loading widget..." in the failure's screenshot, 2026-12-07).
FIRST = 180


def _wait_text(page, selector: str, pattern: str, timeout: float = 60) -> str:
    """The first element of `selector` whose text matches `pattern`, once it does."""
    deadline = time.monotonic() + timeout
    text = ""
    while time.monotonic() < deadline:
        loc = page.locator(selector)
        if loc.count():
            text = loc.first.inner_text()
            if re.search(pattern, text):
                return text
        time.sleep(0.2)
    raise AssertionError(f"{selector}: {pattern!r} never appeared; last text: {text!r}")


def _drive(page, name: str, steps) -> None:
    try:
        steps(page)
    except Exception:
        try:  # best effort: the test's own error is what matters
            page.screenshot(path=str(ARTIFACTS / f"app-{name}-failed.png"), timeout=10_000)
        except Exception as exc:
            print(f"no screenshot of the failure: {exc}", file=sys.stderr)
        raise


def test_workshop_page_walks_the_ceremony_and_turns_a_decryption_into_noise(app):
    url, token, _, browser = app

    def steps(page):
        _wait_text(page, ".mpclr-decrypt-status", r"3 of 3; 3 needed\): decrypted", timeout=FIRST)
        page.get_by_role("button", name="next step ▶").click()
        body = _wait_text(page, ".jp-OutputArea-output", r"1\. A common random seed(.|\n)*crs\.commit")
        assert re.search(r"crs\.commit(.|\n)*\d+ messages, [\d,]+ kB", body), body
        page.screenshot(path=str(ARTIFACTS / "app-workshop-ceremony.png"))
        page.get_by_text("2 · Who decrypts").click()
        page.locator("button.widget-toggle-button", has_text="hospital-3").click()
        _wait_text(page, ".mpclr-decrypt-status", r"\(2 of 3; 3 needed\): not enough shares, the result is noise")
        page.screenshot(path=str(ARTIFACTS / "app-workshop.png"))

    page = _page(browser, "workshop", url, token)
    _drive(page, "workshop", steps)
    page.close()


def test_study_page_runs_breast_cancer_and_shows_the_records_auc(app):
    url, token, tmp, browser = app
    shown = {}

    def steps(page):
        _wait_text(page, ".mpclr-data-status", r"breast_cancer: 569 rows × 30 features, 212 positive", timeout=FIRST)
        handle = page.locator(".widget-slider", has_text="folds").locator(".noUi-handle")
        handle.focus()
        for _ in range(2):
            handle.press("ArrowLeft")
        _wait_text(page, ".widget-slider:has-text('folds') .widget-readout", r"^3$")
        run = page.locator("button.mpclr-run")
        run.click()
        _wait_text(page, "button.mpclr-run", r"Running")
        run.click()  # a second click while the study runs
        _wait_text(page, ".mpclr-notice", r"A study is already running")
        shown["auc"] = _wait_text(page, ".mpclr-auc-secure", r"^0\.\d{4}$", timeout=240)
        shown["seconds"] = float(page.locator(".mpclr-study-seconds").inner_text())
        for phase in ("prepare", "encrypt", "train", "evaluate", "references", "regression"):
            assert "done in" in page.locator(f".mpclr-phase-{phase}").inner_text()
        assert re.search(r"encrypted training\s+done in", page.locator(".mpclr-phase-train").inner_text())
        for kind in ("json", "html"):
            with page.expect_download() as download:
                page.locator(f"a.mpclr-download-{kind}").click()
            download.value.save_as(ARTIFACTS / f"app-study-record.{kind}")
        shown["record"] = json.loads((ARTIFACTS / "app-study-record.json").read_text())
        shown["report"] = (ARTIFACTS / "app-study-record.html").read_text()
        shown["fold_cells"] = page.locator(".mpclr-page table.mpclr-table").first.inner_text()
        shown["regression"] = page.locator(".mpclr-regression-kind").get_attribute("data-kind")
        page.set_viewport_size({"width": 1400, "height": 5000})  # the whole page: Voilà scrolls inside it
        page.screenshot(path=str(ARTIFACTS / "app-study.png"))
        readme = os.environ.get("MPCLR_README_SCREENSHOT")
        if readme:
            page.set_viewport_size({"width": 1200, "height": 2000})
            page.locator(".mpclr-run-area").screenshot(path=str(tmp / "app-study.png"))
            _small_png(tmp / "app-study.png", ROOT / readme)

    page = _page(browser, "study", url, token)
    _drive(page, "study", steps)
    page.close()
    record = shown["record"]
    assert record["data"]["name"] == "breast_cancer" and record["parameters"]["folds"] == 3
    assert record["parameters"]["hospitals"] == 3 and len(record["folds"]) == 3
    assert shown["auc"] == f"{record['summary']['encrypted']['auc'][0]:.4f}"
    for fold in record["folds"]:  # every fold's secure AUC in the page's table
        assert f"{fold['encrypted']['auc']:.4f}" in shown["fold_cells"]
    assert record["app"]["regression_table"]["kind"] == shown["regression"] == "glm-ridge"  # separated: says so
    assert f"secure {shown['auc']}" in shown["report"]
    print(f"study in the page: {shown['seconds']:.1f} s, secure AUC {shown['auc']}")


def test_study_page_names_the_line_and_column_of_a_malformed_upload(app, tmp_path):
    url, token, tmp, browser = app
    bad = tmp_path / "cohort.csv"
    bad.write_text("age,bmi,sbp,outcome\n30,22.5,120,0\n41,24.0,130,1\n52,27.1,high,1\n")

    def steps(page):
        _wait_text(page, ".mpclr-data-status", r"breast_cancer: 569 rows", timeout=FIRST)
        with page.expect_file_chooser() as chooser:
            page.locator(".widget-upload").click()
        chooser.value.set_files(str(bad))
        text = _wait_text(page, ".mpclr-data-status", r"line 4")
        assert text.strip() == "file cohort.csv, line 4, column 3 ('sbp'): holds 'high', not a number"
        folders = list((tmp / "tmp").glob(f"{PREFIX}*/cohort.csv"))
        assert len(folders) == 1 and oct(folders[0].stat().st_mode & 0o777) == "0o600"
        page.locator("button.mpclr-run").click()  # a run on it fails before any work, saying why
        failed = _wait_text(page, ".mpclr-run-error", r"did not start")
        assert failed.strip() == f"The study did not start: {text.strip()}"
        page.screenshot(path=str(ARTIFACTS / "app-upload-error.png"))

    page = _page(browser, "study", url, token)
    _drive(page, "upload", steps)
    page.close()  # the page goes: its kernel is shut down --cull-idle seconds later and removes its uploads
    deadline = time.monotonic() + 30
    while list((tmp / "tmp").glob(f"{PREFIX}*/cohort.csv")) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not list((tmp / "tmp").glob(f"{PREFIX}*/cohort.csv")), "the upload outlived its page's kernel"
