"""The page of `artstyle serve`, in a real headless Chromium, against the shipped model.

The server is the real command (`artstyle serve`, default model) in a subprocess; the
page is driven by Playwright with Debian's `chromium` (`.ci/run` installs it).
"""

from __future__ import annotations

import base64
import csv
import io
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from PIL import Image
from synth import FAST_CLI, make_tree, non_paintings_for_tests, paint, paint_texture, photo_like

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
    """`artstyle serve` with the shipped model."""
    yield from _serve(tmp_path_factory.mktemp("server") / "server.log")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """(server URL, data folder) of `artstyle serve` with a model just trained by the
    README's command (thumbnails kept by default)."""
    folder = tmp_path_factory.mktemp("trained")
    data = make_tree(folder / "data", artists=3, per_artist=3)
    model = folder / "model"
    subprocess.run([sys.executable, "-m", "artstyle", "-q", "train", str(data), "--out", str(model), *FAST_CLI],
                   check=True, capture_output=True)
    for url in _serve(folder / "server.log", "--model", str(model)):
        yield url, data, model


def _serve(log: Path, *args: str, command: str = "serve"):
    port = _free_port()
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "artstyle", command, "--port", str(port), *args], stdout=out, stderr=subprocess.STDOUT
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
    assert cards.locator(".name").all_inner_texts() == ["harbour at dusk.jpg", "shopping list.jpg"]  # as given
    good = cards.filter(has_text="harbour at dusk.jpg")
    sync_api.expect(good.locator(".bar-row")).to_have_count(3, timeout=60_000)
    answer = responses[0].json()[0]  # the page sends one file per request, in order
    shown = good.locator(".bar-label").all_inner_texts()
    assert shown == [p["label"] for p in answer["predictions"][:3]] and set(shown) <= labels
    page.select_option("#top-k", "5")  # the cards shown follow "movements per image", without asking again
    sync_api.expect(good.locator(".bar-row")).to_have_count(5)
    assert good.locator(".bar-label").all_inner_texts() == [p["label"] for p in answer["predictions"][:5]]
    assert len(responses) == 2
    page.select_option("#top-k", "3")
    sync_api.expect(good.locator(".bar-row")).to_have_count(3)
    # "unsure" is explained in words on the page, with the model's own threshold
    sync_api.expect(page.locator("#legend")).to_contain_text("unsure")
    threshold = page.evaluate("fetch('api/model').then(r => r.json()).then(m => m.uncertain_below)")
    sync_api.expect(page.locator("#legend")).to_contain_text(f"{100 * threshold:.0f} %")
    if answer["uncertain"] and answer["is_painting"]:
        sync_api.expect(good.locator(".flag-note")).to_contain_text("unsure")
    values = [float(v) for v in good.locator("[role=meter]").evaluate_all("els => els.map(e => e.getAttribute('aria-valuenow'))")]
    assert values == pytest.approx([100 * p["probability"] for p in answer["predictions"][:3]], abs=0.051)
    widths = good.locator(".bar-fill").evaluate_all("els => els.map(e => e.getBoundingClientRect().width)")
    assert widths[0] > 0 and widths == sorted(widths, reverse=True)  # the bars are drawn to scale
    # the unsure mark appears exactly when the model's movement answer is uncertain
    assert good.locator(".badge.unsure").count() == int(answer["uncertain"] and answer["is_painting"])
    if answer["is_painting"] and not answer["mixed"]:
        assert good.locator(".verdict").inner_text().startswith(shown[0])

    bad = cards.filter(has_text="shopping list.jpg")
    sync_api.expect(bad).to_have_class("card error")
    sync_api.expect(bad.locator(".verdict")).to_contain_text("not a readable image")
    assert bad.locator(".thumb").count() == 0  # no empty picture box for a file that is not a picture
    # no label breaks inside a word: each fits its box (wrapping only at spaces)
    overflowing = good.locator(".bar-label").evaluate_all("els => els.filter(e => e.scrollWidth > e.clientWidth).length")
    assert overflowing == 0
    page.screenshot(path=str(tmp_path / "page.png"), full_page=True)
    assert Image.open(tmp_path / "page.png").size[0] == 1100


@pytest.mark.parametrize("kind", ["photo", "chart"])
def test_a_non_painting_gets_one_verdict_and_its_why_explains_the_verdict(server, browser, tmp_path, kind):
    """The shipped model flags a generated camera-like scene and a matplotlib bar chart: the
    page says so, with the kind, shows the movements only as what it would be if it were a
    painting, and "why?" explains the verdict: no movement heat-map is asked for."""
    picture = tmp_path / f"{kind} upload.png"
    (photo_like(104) if kind == "photo" else non_paintings_for_tests(1)[0][1]).save(picture)
    page = browser.new_page(viewport={"width": 1100, "height": 900})
    explained = []
    page.on("request", lambda r: explained.append(r.url) if r.url.endswith("/api/explain") else None)
    page.goto(server)
    page.set_input_files("#files", [str(picture)])
    card = page.locator(".card").filter(has_text=f"{kind} upload.png")
    sync_api.expect(card.locator(".verdict")).to_have_text(
        re.compile(f"^probably not a painting: looks like a {kind}"), timeout=60_000)  # "chart/diagram"
    sync_api.expect(card.locator(".badge")).to_have_count(0)  # no "unsure"/"mixed": there is no movement answer
    sync_api.expect(card.locator(".bars-title")).to_have_text("If it were a painting, the closest movements would be:")
    sync_api.expect(card).to_have_class(__import__("re").compile("not-painting"))
    card.locator("button.why").click()
    sync_api.expect(card.locator(".reason")).to_contain_text("unlike the paintings the model learnt")
    sync_api.expect(card.locator(".heat")).to_be_hidden()
    assert explained == [] and card.locator(".overlay img[src^='blob:']").count() == 0


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
    paint_texture("dots", 3, seed=8, size=(420, 300)).save(painting)  # the shipped detector calls it a painting
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
    sync_api.expect(overlay).to_have_attribute("src", re.compile("^blob:"), timeout=60_000)
    page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=overlay.element_handle())
    natural = overlay.evaluate("img => [img.naturalWidth, img.naturalHeight]")
    assert natural[0] * 300 == pytest.approx(natural[1] * 420, rel=0.01)  # the painting's shape
    predicted = card.locator(".bar-label").first.inner_text()
    bar_value = card.locator(".bar-value").first.inner_text()  # one answer, one number: the bar's
    sync_api.expect(card.locator(".overlay figcaption")).to_contain_text(f"Where the model saw {predicted} ({bar_value})")
    sync_api.expect(card.locator(".overlay figcaption")).to_contain_text("each map is scaled to its own maximum")
    sync_api.expect(card.locator(".scale")).to_be_visible()  # the colour scale
    original = card.locator(".original img").bounding_box()
    shown = overlay.bounding_box()
    assert shown["width"] >= min(300, width - 120) and original["width"] == pytest.approx(shown["width"], abs=2)
    if width > 560:  # side by side; stacked on a phone
        assert original["y"] == pytest.approx(shown["y"], abs=2) and original["x"] < shown["x"]
    # another movement: the map is asked for again, and the caption names it
    other = next(label for label in card.locator(".movement option").all_inner_texts() if label != predicted)
    first_map = overlay.get_attribute("src")
    card.locator(".movement").select_option(other)
    sync_api.expect(card.locator(".overlay figcaption")).to_contain_text(f"Where the model saw {other} (", timeout=60_000)
    assert overlay.get_attribute("src") != first_map
    neighbours = card.locator(".strip .neighbour")
    sync_api.expect(neighbours).to_have_count(5)
    labels = set(page.evaluate("fetch('api/model').then(r => r.json()).then(m => m.labels)"))
    for text in neighbours.locator("p").all_inner_texts():
        movement, artist, similarity = text.split("\n")
        assert movement in labels and artist.strip() and re.fullmatch(r"\d+ % similar", similarity)
        assert "-" not in artist and "_" not in artist and artist[0].isupper()  # "Peter Paul Rubens", not a slug
    # the shipped model keeps no pictures: it says so in words, not with empty boxes
    sync_api.expect(card.locator(".similar-note")).to_contain_text("keeps no pictures")
    assert neighbours.locator("img").count() == 0
    assert neighbours.locator("p strong").evaluate_all("els => els.filter(e => e.scrollWidth > e.clientWidth).length") == 0
    assert page.evaluate("document.documentElement.scrollWidth") <= width  # the strip scrolls inside the card
    why.click()  # and closes again
    sync_api.expect(card.locator(".explain")).to_be_hidden()
    sync_api.expect(why).to_have_attribute("aria-expanded", "false")


def test_a_freshly_trained_model_shows_its_training_paintings(trained, browser, tmp_path):
    """A model trained with the README's command keeps thumbnails: the strip holds pictures;
    an upload of a training painting is said to be one, not shown as its own neighbour."""
    from artstyle.data.splits import parse_splits_csv

    url, data, model = trained
    new = tmp_path / "new.png"
    paint("02_dot_painting", artist=7, seed=3).save(new)
    split = parse_splits_csv((model / "splits.csv").read_text())
    training = data / next(row["path"] for row in split if row["split"] == "train")
    page = browser.new_page(viewport={"width": 1100, "height": 900})
    page.goto(url)
    page.set_input_files("#files", [str(new), str(training)])
    for name, in_training in (("new.png", False), (training.name, True)):
        card = page.locator(".card").filter(has=page.locator(".name", has_text=name))
        sync_api.expect(card.locator(".bar-row")).to_have_count(3, timeout=60_000)
        card.locator("button.why").click()
        images = card.locator(".strip .neighbour img")
        sync_api.expect(images).to_have_count(5, timeout=60_000)
        for image in images.all():
            page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=image.element_handle())
        note = card.locator(".similar-note")
        # the answer itself says it comes from memory, before any "why?"
        sync_api.expect(card.locator(".badge.memorised")).to_have_count(int(in_training))
        if in_training:
            sync_api.expect(card.locator(".memory-note")).to_contain_text("memory, not a measure of skill")
        if in_training:
            sync_api.expect(note).to_contain_text("in the model's training set")
            files = card.locator(".strip .neighbour p").evaluate_all("els => els.map(e => e.title)")
            assert training.relative_to(data).as_posix() not in files
        else:
            sync_api.expect(note).to_be_hidden()


def test_the_api_docs_and_the_icon_need_no_internet(server, browser):
    """/docs is Swagger UI from files artstyle serves (this machine has no internet)."""
    page = browser.new_page(viewport={"width": 1100, "height": 900})
    outside = []
    page.on("request", lambda r: outside.append(r.url) if not r.url.startswith(server) else None)
    page.goto(server + "docs")
    sync_api.expect(page.locator(".swagger-ui .info .title")).to_contain_text("artstyle", timeout=30_000)
    sync_api.expect(page.locator(".opblock-summary-path").first).to_be_visible()
    assert outside == []
    page.goto(server)
    icon = page.evaluate("fetch(document.querySelector('link[rel=icon]').href).then(r => [r.status, r.headers.get('content-type')])")
    assert icon == [200, "image/svg+xml"]


@pytest.mark.parametrize("width", [1366, 390])
def test_the_page_gives_its_figures_with_their_sample_and_fits_the_width(server, browser, tmp_path, width):
    """The shipped model's line gives top-1 and top-3 per size band, each with its interval and
    n; the legend says the badges were fitted on held-out answers; nothing scrolls sideways."""
    page = browser.new_page(viewport={"width": width, "height": 900})
    page.goto(server)
    info = page.locator("#model-info")
    sync_api.expect(info.locator("li")).to_have_count(2)
    full, small = info.locator("li").all_inner_texts()
    assert full.startswith("full-size scans: top-1 ") and small.startswith("small web copies: top-1 ")
    for line in (full, small):
        assert re.search(r"top-1 \d+ % \(95 % interval \d+ %–\d+ %\), top-3 .* n = [\d,]+$", line), line
    sync_api.expect(page.locator("#legend")).to_contain_text("threshold fitted on 6,372 answers")
    painting = tmp_path / "harbour.png"
    paint_texture("dots", 3, seed=8, size=(420, 300)).save(painting)
    page.set_input_files("#files", [str(painting)])
    sync_api.expect(page.locator(".bar-row")).to_have_count(3, timeout=60_000)
    sync_api.expect(page.locator(".card .flag-note")).to_contain_text(re.compile(r"family: .+ \d+ %|most likely "))
    assert page.evaluate("document.documentElement.scrollWidth") <= width


@pytest.fixture(scope="module")
def reports(trained, tmp_path_factory):
    """An `evaluate --all` report and a `check` report of the trained fixture's folder."""
    _, data, model = trained
    folder = tmp_path_factory.mktemp("reports")
    subprocess.run([sys.executable, "-m", "artstyle", "-q", "evaluate", str(model), str(data), "--all",
                    "--report", str(folder / "report.html")], check=True, capture_output=True)
    subprocess.run([sys.executable, "-m", "artstyle", "-q", "check", str(data), "--report", str(folder / "check.html")],
                   check=True, capture_output=True)
    return folder / "report.html", folder / "check.html"


@pytest.mark.parametrize("width", [1366, 390])
def test_the_reports_keep_held_out_apart_and_fit_the_width(reports, browser, width):
    report, check = reports
    page = browser.new_page(viewport={"width": width, "height": 900})
    page.goto(report.as_uri())
    sync_api.expect(page.locator(".verdict")).to_contain_text("Held out:")
    memorised = page.locator("section.memorised")
    sync_api.expect(memorised.locator("h2")).to_have_text("On training images (memorised; not a measure of skill)")
    sync_api.expect(memorised).to_be_visible()
    assert page.locator("section.memorised").evaluate("e => getComputedStyle(e).color") != \
        page.locator("h1").evaluate("e => getComputedStyle(e).color")  # greyed, not the headline's ink
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    if width < 600:  # wide tables scroll inside their box, which says so
        sync_api.expect(page.locator(".scroll-hint").first).to_be_visible()
    page.goto(check.as_uri())
    sync_api.expect(page.locator("h1")).to_contain_text("artstyle check")
    assert page.evaluate("document.documentElement.scrollWidth") <= width


def _decided(page, n: int, total: int) -> None:
    sync_api.expect(page.locator("#status")).to_contain_text(f"{n} of {total} images decided", timeout=30_000)


def test_review_keeps_keyboard_decisions_across_a_restart_and_trains_on_them(browser, tmp_path):
    """`artstyle review`: 20 answers accepted and 5 corrected by keyboard in Chromium, the
    server killed and started again: the 25 decisions are in labels.csv and on the page, and
    `train labels.csv` learns the corrected movement."""
    data = make_tree(tmp_path / "data", artists=3, per_artist=4)  # 48 images
    labels = tmp_path / "labels.csv"
    args = (str(data), "--labels-csv", str(labels))
    page = browser.new_page(viewport={"width": 1366, "height": 900})
    for url in _serve(tmp_path / "review.log", *args, command="review"):
        page.goto(url + "review")
        sync_api.expect(page.locator(".tile")).to_have_count(48, timeout=60_000)
        page.locator(".tile").first.focus()
        for n in range(1, 21):
            page.keyboard.press("a")
            _decided(page, n, 48)
        for n in range(21, 26):
            page.keyboard.press("c")
            page.keyboard.type("naive")
            page.keyboard.press("Enter")
            _decided(page, n, 48)
    rows = list(csv.DictReader(labels.open()))
    assert len(rows) == 25 and not list(tmp_path.glob("labels.csv.*"))  # no temporary file left behind
    corrected = [r for r in rows if r["movement"] == "naive art"]
    assert len(corrected) >= 5 and all(r["decided_by"] == "person" for r in corrected if r["model_movement"] != "naive art")
    assert all(r["decided_by"] == "model" and r["movement"] == r["model_movement"] for r in rows if r not in corrected)
    assert all((tmp_path / r["path"]).is_file() for r in rows)  # paths relative to labels.csv
    for url in _serve(tmp_path / "review2.log", *args, command="review"):
        page.goto(url + "review")
        _decided(page, 25, 48)
        page.select_option("#f-status", "decided")
        sync_api.expect(page.locator(".tile")).to_have_count(25)
        sync_api.expect(page.locator(".tile .decision", has_text="corrected: naive art")).to_have_count(
            sum(r["decided_by"] == "person" for r in rows))
        assert page.evaluate("document.documentElement.scrollWidth") <= 1366
        page.locator(".tile").first.focus()
        page.keyboard.press("o")  # the picture large, its top five, then the closest paintings and the heat-map
        sync_api.expect(page.locator("#detail-top li")).to_have_count(5)
        page.click("#detail-similar")
        sync_api.expect(page.locator("#detail-neighbours li")).to_have_count(5, timeout=30_000)
        page.click("#detail-heatmap")
        sync_api.expect(page.locator("#detail-image")).to_have_attribute("src", re.compile("^blob:"), timeout=60_000)
    model = tmp_path / "model"
    subprocess.run([sys.executable, "-m", "artstyle", "-q", "train", str(labels), "--out", str(model), *FAST_CLI,
                    "--split", "stratified", "--test-fraction", "0"], check=True, capture_output=True)
    trained = {row["path"]: row["label"] for row in csv.DictReader((model / "splits.csv").open())}
    assert {r["path"]: r["movement"] for r in corrected}.items() <= trained.items()
