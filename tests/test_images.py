"""Every odd file either decodes to upright RGB or raises ImageLoadError with a reason."""

import io

import numpy as np
import pytest
from PIL import Image

from artstyle import ImageLoadError, load_image


def _gradient(w=120, h=80) -> Image.Image:
    x = np.linspace(0, 255, w, dtype=np.uint8)
    arr = np.stack([np.tile(x, (h, 1)), np.full((h, w), 128, np.uint8), np.tile(x[::-1], (h, 1))], axis=-1)
    return Image.fromarray(arr)


def test_cmyk_jpeg_becomes_rgb(tmp_path):
    path = tmp_path / "cmyk.jpg"
    _gradient().convert("CMYK").save(path)
    img = load_image(path)
    assert img.mode == "RGB" and img.size == (120, 80)


def test_16bit_png_keeps_its_tones(tmp_path):
    path = tmp_path / "deep.png"
    arr = np.tile(np.linspace(0, 65535, 100).astype(np.uint16), (50, 1))
    Image.fromarray(arr).save(path)  # mode I;16
    img = load_image(path)
    out = np.asarray(img)
    assert img.mode == "RGB"
    assert out[0, 0, 0] == 0 and out[0, -1, 0] == 255 and 100 < out[0, 50, 0] < 155


def test_transparency_is_composited_on_white(tmp_path):
    rgba = Image.new("RGBA", (10, 10), (255, 0, 0, 0))
    rgba.save(tmp_path / "clear.png")
    la = Image.new("LA", (10, 10), (0, 0))
    la.save(tmp_path / "clear_la.png")
    palette = Image.new("P", (10, 10), 0)
    palette.putpalette([0, 0, 0] * 256)
    palette.info["transparency"] = 0
    palette.save(tmp_path / "clear.gif", transparency=0)
    for name in ("clear.png", "clear_la.png", "clear.gif"):
        img = load_image(tmp_path / name)
        assert img.mode == "RGB"
        assert np.asarray(img)[5, 5].tolist() == [255, 255, 255], name


def test_exif_orientation_is_applied(tmp_path):
    path = tmp_path / "rotated.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise on display
    _gradient(120, 80).save(path, exif=exif)
    assert load_image(path).size == (80, 120)


def test_gif_first_frame_and_other_formats(tmp_path):
    red, blue = Image.new("RGB", (20, 20), "red"), Image.new("RGB", (20, 20), "blue")
    red.save(tmp_path / "anim.gif", save_all=True, append_images=[blue])
    assert np.asarray(load_image(tmp_path / "anim.gif"))[0, 0].tolist()[0] > 200
    for ext in ("png", "webp", "bmp", "tiff"):
        _gradient().save(tmp_path / f"a.{ext}")
        assert load_image(tmp_path / f"a.{ext}").size == (120, 80)


def test_large_jpeg_decodes_reduced_but_not_below_target(tmp_path):
    path = tmp_path / "scan.jpg"
    _gradient(3000, 2000).save(path, quality=85)
    img = load_image(path, min_side=224)
    assert min(img.size) >= 224
    assert img.size[0] <= 750  # draft mode scaled by 1/8 or 1/4, not full size
    png = tmp_path / "scan.png"
    _gradient(2000, 1200).save(png)
    img = load_image(png, min_side=224)
    assert 224 <= min(img.size) < 1200


@pytest.mark.parametrize(
    "name, content, reason",
    [
        ("empty.jpg", b"", "empty file"),
        ("notes.jpg", b"this is a text file, not a painting\n" * 20, "not a readable image"),
    ],
)
def test_unreadable_files_give_reasons(tmp_path, name, content, reason):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(ImageLoadError, match=reason):
        load_image(path)


def test_truncated_jpeg(tmp_path):
    buffer = io.BytesIO()
    _gradient(400, 300).save(buffer, format="JPEG")
    path = tmp_path / "cut.jpg"
    path.write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    with pytest.raises(ImageLoadError, match="truncated"):
        load_image(path)


def test_decompression_bomb_is_refused(tmp_path, monkeypatch):
    path = tmp_path / "bomb.png"
    Image.new("L", (1000, 1000)).save(path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # guard kept: 1M pixels > 2x limit
    with pytest.raises(ImageLoadError, match="decompression bomb"):
        load_image(path)


def test_missing_file(tmp_path):
    with pytest.raises(ImageLoadError, match="no such file"):
        load_image(tmp_path / "nope.jpg")


def test_corrupted_bytes_never_escape_as_other_exceptions(tmp_path):
    buffers = {}
    for fmt in ("JPEG", "PNG", "GIF", "TIFF", "BMP", "WEBP"):
        buffer = io.BytesIO()
        _gradient(64, 48).save(buffer, format=fmt)
        buffers[fmt] = buffer.getvalue()
    rng = np.random.default_rng(0)
    outcomes = set()
    for fmt, data in buffers.items():
        for trial in range(25):
            corrupt = bytearray(data)
            for pos in rng.integers(0, len(corrupt), size=8):
                corrupt[pos] = int(rng.integers(0, 256))
            path = tmp_path / f"{fmt}-{trial}.img"
            end = int(rng.integers(8, len(corrupt) + 1)) if trial % 2 else len(corrupt)
            path.write_bytes(bytes(corrupt[:end]))
            try:
                assert load_image(path, min_side=32).mode == "RGB"
                outcomes.add("decoded")
            except ImageLoadError as exc:
                assert str(exc) and "\n" not in str(exc)
                outcomes.add("refused")
    assert outcomes == {"decoded", "refused"}
