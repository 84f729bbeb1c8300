"""The page of `artstyle serve`, in a real headless Chromium, against the shipped model.

The server is the real command (`artstyle serve`, default model) in a subprocess; the
page is driven by Playwright with Debian's `chromium` (`.ci/run` installs it).
"""

from __future__ import annotations

import base64
import io
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from PIL import Image
from synth import paint, photo_like

import artstyle

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
if CHROMIUM is None:
    pytest.skip("no chromium on PATH (Debian: apt-get install chromium)", allow_module_level=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    port = _free_port()
    log = tmp_path_factory.mktemp("server") / "server.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "artstyle", "serve", "--port", str(port)], stdout=out, stderr=subprocess.STDOUT
        )
        url = f"http://127.0.0.1:{port}/"
        try:
            deadline = time.monotonic() + 120
            while True:
                try:
                    with urllib.request.urlopen(url + "api/health", timeout=2) as response:
                        if response.status == 200:
                            break
                except OSError:
                    pass
                if process.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"artstyle serve did not start:\n{log.read_text()}")
                time.sleep(0.3)
            yield url
        finally:
            process.terminate()
            process.wait(timeout=30)


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        yield browser
        browser.close()


def test_upload_shows_bars_labels_and_an_error_card(server, browser, tmp_path):
    painting = tmp_path / "harbour at dusk.jpg"
    paint("03-Brush Strokes", artist=2, seed=5, size=(480, 360)).save(painting, quality=90)
    not_an_image = tmp_path / "shopping list.jpg"
    not_an_image.write_text("eggs, bread, linseed oil")
    page = browser.new_page(viewport={"width": 1100, "height": 900})
    page.goto(server)
    n_movements = len(artstyle.default_model_path().joinpath("labels.txt").read_text().splitlines())
    sync_api.expect(page.locator("#model-info")).to_contain_text(f"{n_movements} movements")
    labels = set(page.evaluate("fetch('api/model').then(r => r.json()).then(m => m.labels)"))

    responses = []
    page.on("response", lambda r: responses.append(r) if r.url.endswith("/api/predict") else None)
    page.set_input_files("#files", [str(painting), str(not_an_image)])
    cards = page.locator(".card")
    sync_api.expect(cards).to_have_count(2)
    good = cards.filter(has_text="harbour at dusk.jpg")
    sync_api.expect(good.locator(".bar-row")).to_have_count(3, timeout=60_000)
    answer = responses[0].json()[0]  # the page sends one file per request, in order
    shown = good.locator(".bar-label").all_inner_texts()
    assert shown == [p["label"] for p in answer["predictions"]] and set(shown) <= labels
    values = [float(v) for v in good.locator("[role=meter]").evaluate_all("els => els.map(e => e.getAttribute('aria-valuenow'))")]
    assert values == pytest.approx([100 * p["probability"] for p in answer["predictions"]], abs=0.051)
    widths = good.locator(".bar-fill").evaluate_all("els => els.map(e => e.getBoundingClientRect().width)")
    assert widths[0] > 0 and widths == sorted(widths, reverse=True)  # the bars are drawn to scale
    # the unsure mark appears exactly when the model's movement answer is uncertain
    assert good.locator(".badge.unsure").count() == int(answer["uncertain"] and answer["is_painting"])
    if answer["is_painting"] and not answer["mixed"]:
        assert good.locator(".verdict").inner_text().startswith(shown[0])

    bad = cards.filter(has_text="shopping list.jpg")
    sync_api.expect(bad).to_have_class("card error")
    sync_api.expect(bad.locator(".verdict")).to_contain_text("not a readable image")
    page.screenshot(path=str(tmp_path / "page.png"), full_page=True)
    assert Image.open(tmp_path / "page.png").size[0] == 1100


def test_a_photograph_is_answered_as_not_a_painting_on_the_page(server, browser, tmp_path):
    """The shipped model flags the generated camera-like scenes (16 of 16 through the API):
    the page says so, with the kind, instead of a movement."""
    photo = tmp_path / "holiday snapshot.jpg"
    photo_like(104).save(photo, quality=88)
    page = browser.new_page(viewport={"width": 1100, "height": 900})
    page.goto(server)
    page.set_input_files("#files", [str(photo)])
    card = page.locator(".card").filter(has_text="holiday snapshot.jpg")
    sync_api.expect(card.locator(".verdict")).to_have_text("probably not a painting: looks like a photo", timeout=60_000)
    sync_api.expect(card.locator(".badge")).to_have_count(0)  # no "unsure"/"mixed": there is no movement answer


def test_the_page_is_keyboard_reachable_takes_a_drop_and_fits_a_phone(server, browser, tmp_path):
    page = browser.new_page(viewport={"width": 375, "height": 740})
    page.goto(server)
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "files"  # the file chooser comes first
    painting = io.BytesIO()
    paint("05_Rings", artist=1, seed=3).save(painting, "PNG")
    dropped = page.evaluate_handle(
        """([name, b64]) => {
            const data = new DataTransfer();
            const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
            data.items.add(new File([bytes], name, {type: "image/png"}));
            return data;
        }""",
        ["dropped.png", base64.b64encode(painting.getvalue()).decode()],
    )
    page.dispatch_event("#upload", "drop", {"dataTransfer": dropped})  # drag-and-drop, not the chooser
    sync_api.expect(page.locator(".card")).to_contain_text("dropped.png")
    sync_api.expect(page.locator(".bar-row")).to_have_count(3, timeout=60_000)
    assert page.evaluate("document.documentElement.scrollWidth") <= 375  # no sideways scrolling
    page.screenshot(path=str(tmp_path / "phone.png"), full_page=True)
    assert Path(tmp_path / "phone.png").stat().st_size > 0


@pytest.mark.parametrize("width", [1100, 375])
def test_why_shows_the_heat_map_and_the_closest_training_paintings(server, browser, tmp_path, width):
    painting = tmp_path / "orchard.png"
    paint("02_dot_painting", artist=3, seed=8, size=(420, 300)).save(painting)
    page = browser.new_page(viewport={"width": width, "height": 900})
    page.goto(server)
    page.set_input_files("#files", [str(painting)])
    card = page.locator(".card").first
    sync_api.expect(card.locator(".bar-row")).to_have_count(3, timeout=60_000)
    why = card.locator("button.why")
    sync_api.expect(why).to_be_visible()
    sync_api.expect(why).to_have_attribute("aria-expanded", "false")
    # keyboard: Tab reaches the button, Enter opens it
    page.locator("#top-k").focus()
    for _ in range(10):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.classList.contains('why')"):
            break
    assert page.evaluate("document.activeElement.classList.contains('why')")
    page.keyboard.press("Enter")
    sync_api.expect(why).to_have_attribute("aria-expanded", "true")
    overlay = card.locator(".overlay img")
    sync_api.expect(overlay).to_have_attribute("src", __import__("re").compile("^blob:"), timeout=60_000)
    page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=overlay.element_handle())
    natural = overlay.evaluate("img => [img.naturalWidth, img.naturalHeight]")
    assert natural[0] * 300 == pytest.approx(natural[1] * 420, rel=0.01)  # the painting's shape
    neighbours = card.locator(".strip .neighbour")
    sync_api.expect(neighbours).to_have_count(5)
    labels = set(page.evaluate("fetch('api/model').then(r => r.json()).then(m => m.labels)"))
    for text in neighbours.locator("p").all_inner_texts():
        movement, artist = text.split("\n")
        assert movement in labels and artist.strip()
    assert page.evaluate("document.documentElement.scrollWidth") <= width  # the strip scrolls inside the card
    why.click()  # and closes again
    sync_api.expect(card.locator(".explain")).to_be_hidden()
    sync_api.expect(why).to_have_attribute("aria-expanded", "false")
