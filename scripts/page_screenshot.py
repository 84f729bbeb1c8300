"""Write docs/img/page.png: the page of `artstyle serve` (shipped model) on two generated
pictures, for the README and the docs site. No real painting goes into the repository.

    python scripts/page_screenshot.py     # needs the test extra (playwright) and Debian's chromium
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from synth import paint, paint_texture  # noqa: E402

PORT = 8765


def main() -> None:
    from playwright import sync_api

    with tempfile.TemporaryDirectory() as tmp:
        pictures = []
        for name, image in [("scribbles.jpg", paint("06_Scribbles", artist=2, seed=5, size=(480, 360))),
                            ("scribbled-marks.jpg", paint_texture("scribbles", 1, seed=3))]:
            image.save(Path(tmp) / name, quality=90)
            pictures.append(str(Path(tmp) / name))
        server = subprocess.Popen([sys.executable, "-m", "artstyle", "serve", "--port", str(PORT)],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            for _ in range(120):  # the server takes a few seconds to load the model
                try:
                    urllib.request.urlopen(f"http://127.0.0.1:{PORT}/api/model")
                    break
                except OSError:
                    time.sleep(0.5)
            with sync_api.sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=shutil.which("chromium"), headless=True)
                page = browser.new_page(viewport={"width": 1000, "height": 640})
                page.goto(f"http://127.0.0.1:{PORT}/")
                page.set_input_files("#files", pictures)
                page.locator(".card .bar-row").nth(5).wait_for(timeout=60_000)
                page.evaluate("document.querySelector('.card').scrollIntoView()")
                page.wait_for_timeout(500)
                page.screenshot(path=str(ROOT / "docs" / "img" / "page.png"))
                browser.close()
        finally:
            server.terminate()
    print(ROOT / "docs" / "img" / "page.png")


if __name__ == "__main__":
    main()
