"""The service's web page (`GET /`) in a real headless Chromium: a text and a recording each come back as a playable
audio element of the answer's duration with a drawn spectrogram, and an API error shows as a readable message."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
import soundfile
import torch
from playwright.sync_api import Page, sync_playwright

from tests.conftest import HEAVY, tiny_config, tone
from tests.test_mos_browser import ARGS, CHROMIUM
from tests.test_server_support import build_models_dir, serving, wait_ready
from vocoder.features.linguistic import linguistic_dim
from vocoder.models.checkpoint import save_model
from vocoder.models.wavenet import WaveNet
from vocoder_server import Settings, create_app

pytestmark = [
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs the system Chromium at /usr/bin/chromium"),
    pytest.mark.skipif(shutil.which("festival") is None, reason="needs Festival (make install)"),
    pytest.mark.slow,
    HEAVY,
]


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = build_models_dir(tmp_path_factory.mktemp("models"))
    torch.manual_seed(0)
    features = {"conditioning": ["linguistic", "lf0", "vuv"], "linguistic_dim": linguistic_dim()}
    config = tiny_config(name="ling", features=features, speakers=["slt", "kal", "ked"])
    save_model(root / "ling" / "model.safetensors", WaveNet(config), config, "teacher", {"steps": 0})
    with serving(create_app(Settings(models_dir=root, device="cpu"))) as base:
        wait_ready(lambda path: httpx.get(base + path))
        yield base


@pytest.fixture(scope="module")
def page(url: str) -> Iterator[Page]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            context = browser.new_context(accept_downloads=True, viewport={"width": 1100, "height": 900})
            context.set_default_timeout(60000)
            opened = context.new_page()
            opened.goto(url)
            opened.wait_for_selector("#voice option:nth-child(3)", state="attached")  # the voices have loaded
            yield opened
        finally:
            browser.close()


METADATA = """new Promise((loaded) => {
    const player = document.getElementById('player');
    if (player.readyState >= 1) loaded(); else player.addEventListener('loadedmetadata', () => loaded());
})"""
"""Waits for the audio element's metadata (evaluated once: the page's Content-Security-Policy forbids the string
evaluation that polling with `wait_for_function` needs)."""


def played_duration(page: Page) -> float:
    """The audio element's duration once the page has shown the result (spectrograms drawn) and the element's
    metadata is in, after checking that it plays."""
    page.wait_for_selector("#busy", state="hidden")
    page.evaluate(METADATA)
    assert page.evaluate("document.getElementById('player').play().then(() => true)")
    duration: float = page.evaluate("document.getElementById('player').duration")
    return duration


def spectrogram_drawn(page: Page, canvas: str) -> bool:
    """Some pixel of the canvas is neither transparent nor black."""
    script = f"""() => {{
        const c = document.getElementById('{canvas}');
        const data = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        for (let i = 0; i < data.length; i += 4) if (data[i] + data[i + 1] + data[i + 2] > 0) return true;
        return false;
    }}"""
    drawn: bool = page.evaluate(script)
    return drawn


def test_text_is_spoken_with_the_chosen_voice(page: Page) -> None:
    page.fill("#text", "Yes, thank you.")
    page.select_option("#voice", "kal")
    with page.expect_response("**/v1/tts?**") as answer:
        page.click("#speak")
    response = answer.value
    assert response.status == 200 and response.headers["x-model"] == "ling"
    assert played_duration(page) == pytest.approx(float(response.headers["x-audio-duration"]), abs=2e-3)
    assert page.inner_text("#stat-model") == "ling" and float(page.inner_text("#stat-rtf")) > 0
    assert spectrogram_drawn(page, "spectrogram-result")
    assert not page.is_visible("#upload-figure") and not page.is_visible("#error")
    with page.expect_download() as download:
        page.click("#download")
    assert download.value.suggested_filename == "ling.wav"


def test_a_recording_is_resynthesised_beside_its_spectrogram(page: Page, tmp_path: Path) -> None:
    recording = tmp_path / "take.wav"
    left = tone(0.4, 180.0, 44100)
    soundfile.write(recording, np.stack([left, left], axis=1), 44100)
    page.select_option("#audio-model", "solo")
    assert page.is_disabled("#speaker")  # solo has no speakers
    page.set_input_files("#file", str(recording))
    with page.expect_response("**/v1/vocode?**") as answer:
        page.click("#vocode")
    response = answer.value
    assert response.status == 200
    assert played_duration(page) == pytest.approx(float(response.headers["x-audio-duration"]), abs=2e-3)
    assert "resampled 44100 Hz" in page.inner_text("#stat-conversion")
    assert page.is_visible("#upload-figure")
    assert spectrogram_drawn(page, "spectrogram-result") and spectrogram_drawn(page, "spectrogram-upload")


def test_an_api_error_is_shown_as_a_readable_message(page: Page, tmp_path: Path) -> None:
    notes = tmp_path / "notes.wav"
    notes.write_text("these are my notes, not a recording")
    page.select_option("#audio-model", "teacher")
    assert page.input_value("#speaker") == "alice"
    page.set_input_files("#file", str(notes))
    page.click("#vocode")
    page.wait_for_selector("#error", state="visible")
    message = page.inner_text("#error")
    assert "notes.wav: cannot read audio" in message and "422 invalid_audio" in message
