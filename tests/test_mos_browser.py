"""The exported MOS page in a real (headless) Chromium from file://: familiarisation, play-to-the-end gating,
rating every item, resuming after a reload, the completion code and the CSV download that `analyze` reads."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import pytest
from playwright.sync_api import Page, sync_playwright

from tests.conftest import HEAVY
from tests.eval_synthetic import write_corpus
from vocoder.eval.mos_export import export_package
from vocoder.eval.mos_report import analyze_and_report

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--autoplay-policy=no-user-gesture-required",
]

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs the system Chromium at /usr/bin/chromium")


def score_for(stimulus: dict, careless: bool) -> int:
    """An attentive listener follows the condition; the careless one rates the low anchor 'Excellent'."""
    if stimulus["kind"] == "gold_anchor":
        return 5 if careless else 1
    if stimulus["kind"] == "gold_reference":
        return 5
    return {"lowpass": 3, "mulaw": 2}[stimulus["system"]]


def rate_one(page: Page, score: int) -> None:
    assert page.locator("#scale input:not([disabled])").count() == 0  # not before it has been heard
    assert page.is_disabled("#next")
    page.click("#play")
    page.wait_for_selector("#scale input:not([disabled])")
    page.check(f"#scale input[value='{score}']")
    page.click("#next")


def run_listener(page: Page, url: str, key: dict, number: int, careless: bool, out: Path) -> Path:
    playlist = key["playlists"][number - 1]
    page.goto(f"{url}?playlist={number}")
    page.click("#start")
    assert "listener ID" in page.inner_text("#welcome-error")
    page.fill("#listener", f"listener{number}")
    page.click("#start")
    assert page.is_disabled("#to-test")
    for example in page.locator("#examples button").all():
        example.click()
    page.wait_for_function("!document.getElementById('to-test').disabled")
    page.click("#to-test")
    trials = playlist["trials"]
    for index, stimulus_id in enumerate(trials):
        if index == 2:  # a reload resumes where the listener stopped, from localStorage
            page.reload()
            page.fill("#listener", f"listener{number}")
            page.click("#start")
            assert page.inner_text("#trial-status") == f"Item 3 of {len(trials)}"
        rate_one(page, score_for(key["stimuli"][stimulus_id], careless))
    assert page.inner_text("#completion-code") == playlist["completion_code"]
    with page.expect_download() as download:
        page.click("#download")
    target = out / f"ratings{number}.csv"
    download.value.save_as(target)
    return target


@pytest.mark.slow
@HEAVY
def test_listeners_rate_in_chromium_and_analyze_reads_the_downloads(tmp_path: Path) -> None:
    dirs = write_corpus(tmp_path, count=2, seconds=0.5)
    systems = [("lowpass", dirs["lowpass"]), ("mulaw", dirs["mulaw"])]
    key = export_package(dirs["reference"], systems, tmp_path / "pkg", listeners=2, gold_per_kind=1, familiarisation=2)
    # Serve it from a path with a space, as an experimenter's folder may have.
    package = tmp_path / "test package"
    shutil.copytree(tmp_path / "pkg", package)
    url = (package / "index.html").as_uri()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            context = browser.new_context(accept_downloads=True)
            context.set_default_timeout(15000)
            page = context.new_page()
            files = [run_listener(page, url, key, number, number == 2, tmp_path) for number in (1, 2)]
        finally:
            browser.close()

    rows = list(csv.DictReader(files[0].open()))
    assert len(rows) == len(key["playlists"][0]["trials"])
    assert all(int(row["plays"]) == 1 and int(row["response_time_ms"]) >= 0 for row in rows)
    assert len({row["session"] for row in rows}) == 1  # the reload kept the session

    result = analyze_and_report(package, tmp_path / "pkg.key.json", files, tmp_path / "report", bootstrap=200)
    rejected = {s.listener: s.reasons for s in result.screening if s.reasons}
    assert list(rejected) == ["listener2"]
    mos = {s.system: s.mos for s in result.summaries}
    assert (mos["lowpass"], mos["mulaw"]) == (3.0, 2.0)
