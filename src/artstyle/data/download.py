"""Fetch a dataset archive over a slow link that breaks, then unpack it safely.

The archive streams into `<name>.part`; after a cut the next attempt asks the server
for the rest (HTTP Range) instead of starting over, with exponential back-off between
attempts. It takes its final name only once complete and, when a SHA-256 is known,
verified. A finished download leaves a small receipt, so running the command again
does nothing.
"""

from __future__ import annotations

import http.client
import json
import logging
import os
import re
import time
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse

from .. import __version__
from ..errors import DownloadError
from ..files import atomic_write_bytes
from ..progress import progress_bar
from .archive import class_root, extract_zip
from .dataset import file_sha256

log = logging.getLogger("artstyle")

RETRY_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})
RECEIPT = ".artstyle-download.json"


@dataclass(frozen=True)
class RemoteDataset:
    """A dataset artstyle knows how to fetch."""

    name: str
    url: str
    sha256: str | None  # None: not published; the digest is printed after download for pinning
    size: int | None  # bytes
    about: str


DATASETS = {
    "pandora18k": RemoteDataset(
        name="pandora18k",
        url="http://imag.pub.ro/pandora/Download/Pandora_18k.zip",
        # The authors publish no checksum and this project was built offline, so neither
        # the digest nor the exact size of the real archive could be recorded. Pass
        # --sha256 to verify (the digest of every download is printed and kept in the receipt).
        sha256=None,
        size=None,
        about="Pandora18k: 18 movements, about 18k paintings, a 1.4 GB zip (Florea et al., 2016)",
    )
}


def _content_range(header: str | None) -> tuple[int | None, int | None]:
    """(first byte, total size) of a `Content-Range: bytes 100-199/1000` (or `*/1000`) header."""
    match = re.fullmatch(r"bytes\s+(?:(\d+)-\d+|\*)/(\d+)", (header or "").strip())
    if not match:
        return None, None
    return (int(match.group(1)) if match.group(1) else None), int(match.group(2))


def _open_part(part: Path, have: int):
    """The partial file, appended to when resuming; a local failure is a DownloadError, never retried."""
    try:
        return open(part, "ab" if have else "wb")
    except OSError as exc:
        raise DownloadError(f"{part}: cannot write ({exc.strerror or exc})") from None


def fetch(
    url: str,
    dest: str | os.PathLike,
    *,
    sha256: str | None = None,
    size: int | None = None,
    retries: int = 8,
    backoff: float = 2.0,
    timeout: float = 60.0,
    show_progress: bool = True,
) -> Path:
    """Download `url` to `dest`, resuming `dest.part` and verifying `sha256`/`size` when given.

    An existing `dest` is taken as complete: it only ever gets its name after a whole,
    verified download.
    """
    dest = Path(dest)
    if dest.exists():
        return dest
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DownloadError(f"{dest.parent}: cannot create the folder ({exc.strerror or exc})") from None
    part = dest.with_name(dest.name + ".part")
    total = size
    failures = 0
    while True:
        have = part.stat().st_size if part.exists() else 0
        if total is not None and have >= total:
            break
        headers = {"User-Agent": f"artstyle/{__version__}", "Accept-Encoding": "identity"}
        if have:
            headers["Range"] = f"bytes={have}-"
        received = 0
        try:
            with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout) as response:
                start, whole = _content_range(response.headers.get("Content-Range"))
                if have and (response.status != 206 or start != have):
                    log.warning("%s: the server does not resume downloads; starting over", url)
                    have = 0
                length = response.headers.get("Content-Length")
                total = whole or (have + int(length) if length is not None else total)
                with _open_part(part, have) as out, progress_bar(
                    total, f"Downloading {dest.name}", enabled=show_progress, unit="bytes", completed=have
                ) as advance:
                    while block := response.read(1 << 20):
                        try:
                            out.write(block)
                        except OSError as exc:  # a full disk is not a network hiccup: stop, keep what is there
                            raise DownloadError(f"{part}: cannot write ({exc.strerror or exc}); run again "
                                                "to resume once there is room") from None
                        received += len(block)
                        advance(len(block))
            if total is None or have + received >= total:
                total = have + received if total is None else total
                break
            raise ConnectionError(f"connection closed after {have + received} of {total} bytes")
        except urllib.error.HTTPError as exc:
            if exc.code == 416 and have:  # asked beyond the end: the part may already be whole
                total = _content_range(exc.headers.get("Content-Range"))[1]
                if total == have:
                    break
                part.unlink()
                continue
            if exc.code not in RETRY_STATUS:
                raise DownloadError(f"{url}: HTTP {exc.code} {exc.reason}") from None
            reason = f"HTTP {exc.code} {exc.reason}"
        except (urllib.error.URLError, http.client.HTTPException, OSError) as exc:
            reason = str(getattr(exc, "reason", None) or exc) or type(exc).__name__
        failures = 0 if received else failures + 1
        if failures > retries:
            kept = part.stat().st_size if part.exists() else 0
            raise DownloadError(
                f"{url}: {reason}; gave up after {retries} retries ({kept} bytes kept in {part}; run again to resume)"
            )
        delay = backoff * 2 ** max(failures - 1, 0)
        log.warning("download interrupted (%s); resuming in %.0f s", reason, delay)
        time.sleep(delay)

    got = part.stat().st_size
    if size is not None and got != size:
        part.unlink()
        raise DownloadError(f"{url}: got {got} bytes, expected {size}; the download was removed, run again")
    if sha256:
        digest = file_sha256(part)
        if digest != sha256.lower():
            part.unlink()
            raise DownloadError(
                f"{url}: SHA-256 mismatch (expected {sha256.lower()}, got {digest}); the download was removed, run again"
            )
    os.replace(part, dest)
    return dest


@dataclass(frozen=True)
class Downloaded:
    """Where a dataset landed: the archive, the unpacked folder and its class folders."""

    archive: Path
    folder: Path
    data: Path
    sha256: str
    already: bool  # True when an earlier run had finished it and nothing was done


def _local_path(url: str) -> Path | None:
    parsed = urlparse(url)
    if parsed.scheme == "file":
        return Path(unquote(parsed.path))
    return Path(url) if not parsed.scheme or len(parsed.scheme) == 1 else None  # no scheme, or C:\...


def get_dataset(
    name: str,
    to: str | os.PathLike,
    *,
    url: str | None = None,
    archive: str | os.PathLike | None = None,
    sha256: str | None = None,
    retries: int = 8,
    backoff: float = 2.0,
    show_progress: bool = True,
) -> Downloaded:
    """Download (or take `archive`), verify and unpack dataset `name` under `to`.

    `archive` (or a `file://`/plain path `url`) is read in place and never modified.
    """
    if name not in DATASETS:
        raise DownloadError(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}")
    known = DATASETS[name]
    to = Path(to).expanduser()
    url = url or known.url
    expected = (sha256 or known.sha256 or "").lower() or None
    if expected and not re.fullmatch(r"[0-9a-f]{64}", expected):
        raise DownloadError(f"--sha256 {sha256!r}: not a SHA-256 (64 hex digits)")
    local = Path(archive).expanduser() if archive else _local_path(url)
    receipt_path = to / RECEIPT
    receipt = _read_receipt(receipt_path)
    if receipt and receipt.get("dataset") == name and (to / receipt["folder"]).is_dir():
        if expected and receipt.get("sha256") != expected:
            raise DownloadError(
                f"{to / receipt['folder']} was unpacked from an archive with SHA-256 {receipt.get('sha256')}, "
                f"not {expected}; move it away to fetch again"
            )
        folder = to / receipt["folder"]
        return Downloaded(to / receipt["archive"], folder, to / receipt["data"], receipt["sha256"], already=True)

    verified = False  # whether `fetch` just hashed the archive against `expected`
    if local is not None:
        if not local.is_file():
            raise DownloadError(f"{local}: no such archive")
        archive_path = local
    else:
        archive_path = to / (Path(unquote(urlparse(url).path)).name or f"{name}.zip")
        verified = expected is not None and not archive_path.exists()  # else fetch returns it unchecked
        fetch(
            url, archive_path, sha256=expected, size=None if sha256 else known.size,
            retries=retries, backoff=backoff, show_progress=show_progress,
        )
        if not zipfile.is_zipfile(archive_path):  # e.g. an HTML error page served with status 200
            archive_path.unlink()
            raise DownloadError(f"{url}: the download is not a zip archive; it was removed, check the URL")
    digest = expected if verified and expected else file_sha256(archive_path)  # 1.4 GB: hash it once
    if expected and digest != expected:
        raise DownloadError(f"{archive_path}: SHA-256 mismatch (expected {expected}, got {digest})")
    folder = extract_zip(archive_path, to, show_progress=show_progress)
    data = class_root(folder)
    record = {
        "dataset": name,
        "archive": os.path.relpath(archive_path, to),
        "sha256": digest,
        "size": archive_path.stat().st_size,
        "folder": folder.name,
        "data": data.relative_to(to).as_posix(),
    }
    atomic_write_bytes(receipt_path, json.dumps(record, indent=2).encode())
    return Downloaded(archive_path, folder, data, digest, already=False)


def _read_receipt(path: Path) -> dict | None:
    try:
        receipt = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    needed = {"dataset", "archive", "sha256", "folder", "data"}
    return receipt if isinstance(receipt, dict) and needed <= receipt.keys() else None
