"""The README's screenshot of the service page: the bundled models served on loopback, a Festival recording dropped
for copy synthesis in headless Chromium, the page captured once the result is shown.

    python scripts/page_screenshot.py [--models models] [--model teacher] [--out docs/service-page.png]
"""

from __future__ import annotations

import argparse
import socket
import tempfile
import threading
import time
from pathlib import Path

import httpx
import uvicorn
from playwright.sync_api import sync_playwright

from vocoder.frontend.festival import run_festival
from vocoder.models.checkpoint import bundled_models_dir
from vocoder_server import Settings, create_app

CHROMIUM = "/usr/bin/chromium"
TEXT = "The service speaks any sentence you type."


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=Path, default=bundled_models_dir())
    parser.add_argument("--model", default="teacher", help="the model of the copy synthesis")
    parser.add_argument("--out", type=Path, default=Path("docs/service-page.png"))
    args = parser.parse_args()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    app = create_app(Settings(models_dir=args.models))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 600
        while not server.started or httpx.get(f"{url}/readyz").status_code != 200:
            if time.monotonic() > deadline:
                raise SystemExit("the service was not ready within 600 s")
            time.sleep(0.2)
        with tempfile.TemporaryDirectory() as scratch:
            [utterance] = run_festival([TEXT], "kal", Path(scratch), wave=True)
            assert utterance.wave_path is not None
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--headless", "--no-sandbox"])
                page = browser.new_page(viewport={"width": 1100, "height": 700})
                page.set_default_timeout(600_000)
                page.goto(url)
                page.wait_for_selector(f"#audio-model option[value='{args.model}']", state="attached")
                page.fill("#text", TEXT)
                page.select_option("#audio-model", args.model)
                page.set_input_files("#file", str(utterance.wave_path))
                page.click("#vocode")
                page.wait_for_selector("#result", state="visible")
                page.wait_for_selector("#busy", state="hidden")
                args.out.parent.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(args.out), full_page=True)
                browser.close()
    finally:
        server.should_exit = True
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
