"""The workshop notebook in a real browser: JupyterLab on 127.0.0.1, Debian's Chromium driven headless by
Playwright. Lab opens the notebook, the kernel comes up Idle, Run All executes every cell, moving the
"who decrypts" selection changes what the researcher gets.

Runs on a temporary copy of the notebooks (Lab autosaves outputs into the files it opens). Needs
/usr/bin/chromium (`apt-get install -y chromium`; never `playwright install`). A screenshot is kept in
test-artifacts/; to refresh the README's picture:
    MPCLR_README_SCREENSHOT=notebooks/img/workshop.png .venv/bin/python -m pytest tests/notebooks/test_browser.py
"""

import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

pytestmark = pytest.mark.skipif(
    not Path(CHROMIUM).exists(), reason=f"{CHROMIUM} is missing: apt-get install -y chromium"
)


def wait_until_serving(proc, probe: str, log: Path, what: str, timeout: float = 60) -> None:
    """Until `probe` answers 200; fail with the server's log if it exits or takes longer than `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(probe, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"{what} did not start: {log.read_text()[-2000:]}")
        time.sleep(0.3)


def stop_server(proc, grace: float) -> None:
    """Terminate, give it `grace` seconds to shut its kernels down, then kill."""
    proc.terminate()
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def lab(tmp_path):
    """JupyterLab serving a copy of notebooks/, with its own settings and run folder."""
    shutil.copytree(ROOT / "notebooks", tmp_path / "nb", ignore=shutil.ignore_patterns("img", ".ipynb_checkpoints"))
    port, token = _free_port(), secrets.token_hex(16)
    env = {
        **os.environ,
        "MPCLR_RUN_DIR": str(tmp_path / "runs"),
        "JUPYTER_CONFIG_DIR": str(tmp_path / "cfg"),
        "JUPYTERLAB_SETTINGS_DIR": str(tmp_path / "settings"),
        "JUPYTERLAB_WORKSPACES_DIR": str(tmp_path / "workspaces"),
        "JUPYTER_RUNTIME_DIR": str(tmp_path / "rt"),
    }
    news = tmp_path / "settings" / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings"
    news.parent.mkdir(parents=True)
    news.write_text('{"fetchNews": "false"}')  # no "official Jupyter news?" toast over the notebook
    log = open(tmp_path / "lab.log", "w")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "jupyter",
            "lab",
            "--no-browser",
            "--allow-root",
            "--ServerApp.ip=127.0.0.1",
            f"--ServerApp.port={port}",
            "--ServerApp.port_retries=0",
            f"--IdentityProvider.token={token}",
            f"--ServerApp.root_dir={tmp_path / 'nb'}",
            "--LabApp.news_url=None",
            "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
            "--LabApp.extension_manager=readonly",
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    wait_until_serving(proc, f"{url}/api/status?token={token}", tmp_path / "lab.log", "JupyterLab")
    yield url, token, tmp_path
    stop_server(proc, grace=15)
    log.close()


def _wait_for_connected_idle_kernel(url: str, token: str, log: Path, timeout: float = 90) -> None:
    """The toolbar says "idle" before any kernel exists: ask the server for a kernel that is idle and has
    the page's websocket connected.

    jupyter_server 2.x lists a kernel as soon as it is registered but sets its `last_activity` a moment
    later, and /api/kernels answers 500 (AttributeError) in between; under load that window is wide
    enough to hit (CI, 2026-12-07). A 5xx is "not ready yet", not a failure."""
    deadline = time.monotonic() + timeout
    kernels: object = "no answer yet"
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/api/kernels?token={token}", timeout=5) as r:
                kernels = json.load(r)
        except urllib.error.HTTPError as e:
            if e.code < 500:
                raise
            kernels = f"HTTP {e.code}"
        else:
            if any(k["execution_state"] == "idle" and k["connections"] > 0 for k in kernels):
                return
        time.sleep(0.3)
    pytest.fail(f"no idle kernel with a browser connection after {timeout} s ({kernels}): {log.read_text()[-2000:]}")


def _status_text(page) -> str:
    return page.locator(".widget-html-content", has_text="shares from").last.inner_text()


def test_workshop_runs_in_jupyterlab_and_reacts_to_a_widget(lab):
    from playwright.sync_api import sync_playwright

    url, token, tmp = lab
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(90_000)
            try:
                _drive(page, url, token, tmp)
            except Exception:
                page.screenshot(path=str(ARTIFACTS / "workshop-browser-failed.png"))
                raise
        finally:
            browser.close()
    assert (tmp / "runs" / "workshop.json").is_file()  # the notebook wrote into MPCLR_RUN_DIR, not the repo


def _drive(page, url, token, tmp):
    """Open, wait for Idle, Run All, deselect a key holder, check the researcher now gets noise."""
    page.goto(f"{url}/lab/tree/90_workshop.ipynb?token={token}")
    _wait_for_connected_idle_kernel(url, token, tmp / "lab.log")
    page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']")

    page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Run$")).click()
    page.locator(".lm-Menu-itemLabel", has_text=re.compile(r"^Run All Cells$")).click()
    status = page.locator(".widget-html-content", has_text="shares from").last
    status.wait_for()
    page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']")
    before = _status_text(page)
    assert "hospital-3 (3 of 3; 3 needed): decrypted" in before

    page.locator("button.widget-toggle-button", has_text="hospital-3").click()
    deadline = time.monotonic() + 60
    while _status_text(page) == before and time.monotonic() < deadline:
        time.sleep(0.2)
    after = _status_text(page)
    assert after != before, "the output did not change when a key holder was deselected"
    assert "(2 of 3; 3 needed): not enough shares, the result is noise" in after
    page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']")
    plot_title = page.locator(".widget-output img").last
    assert plot_title.is_visible()

    page.locator(".widget-vbox").last.scroll_into_view_if_needed()
    page.screenshot(path=str(ARTIFACTS / "workshop-browser.png"))
    readme = os.environ.get("MPCLR_README_SCREENSHOT")
    if readme:
        page.locator(".widget-vbox").last.screenshot(path=str(tmp / "workshop.png"))
        _small_png(tmp / "workshop.png", ROOT / readme)


def _small_png(src: Path, dst: Path) -> None:
    """A small README picture: 800 px wide, a 64-colour palette."""
    from PIL import Image

    img = Image.open(src).convert("RGB")
    if img.width > 800:
        img = img.resize((800, round(img.height * 800 / img.width)), Image.LANCZOS)
    dst.parent.mkdir(parents=True, exist_ok=True)
    img.quantize(colors=64).save(dst, optimize=True)
