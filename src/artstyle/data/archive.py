"""Unpack a dataset zip without trusting it.

Every member is checked before anything is written: paths that would land outside the
target (absolute, drive letters, `..`), symbolic links and absurd compression ratios
(zip bombs) are refused, as is an archive larger than the free disk space. The tree is
unpacked into a hidden temporary folder beside its final place and renamed into place
only when complete, so an interrupted run never leaves a half dataset behind.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import stat
import tempfile
import zipfile
import zlib
from pathlib import Path, PurePosixPath

from ..errors import DownloadError
from ..files import public_mode
from ..progress import progress_bar

log = logging.getLogger("artstyle")

MAX_RATIO = 100  # uncompressed : compressed; paintings (JPEG) barely compress at all
RATIO_MIN_BYTES = 1 << 20  # small members (text, tiny PNGs) may compress well, harmlessly


def unsafe_reason(info: zipfile.ZipInfo) -> str | None:
    """Why this member must not be extracted, or None when it is safe."""
    name = info.filename.replace("\\", "/")
    if name.startswith("/") or re.match(r"^[A-Za-z]:", name):
        return "absolute path"
    if ".." in PurePosixPath(name).parts:
        return "path leaves the target folder (..)"
    if stat.S_ISLNK(info.external_attr >> 16):
        return "symbolic link"
    if info.file_size > RATIO_MIN_BYTES and info.file_size > MAX_RATIO * max(info.compress_size, 1):
        return f"compression ratio {info.file_size // max(info.compress_size, 1)}:1 (zip bomb?)"
    return None


def _top_folder(members: list[zipfile.ZipInfo]) -> str | None:
    """The one folder every member sits in, if there is one."""
    tops = {PurePosixPath(m.filename.replace("\\", "/")).parts[0] for m in members}
    if len(tops) == 1 and all("/" in m.filename.replace("\\", "/").rstrip("/") or m.is_dir() for m in members):
        return tops.pop()
    return None


def extract_zip(archive: str | os.PathLike, target: str | os.PathLike, *, show_progress: bool = True) -> Path:
    """Unpack `archive` under `target` and return the folder it created.

    An archive whose members share one top folder (`Pandora_18k/...`) becomes
    `target/<that folder>`; any other becomes `target/<archive name without .zip>`.
    An existing folder of that name is never overwritten.
    """
    archive, target = Path(archive), Path(target)
    try:
        zf = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError) as exc:
        raise DownloadError(f"{archive}: not a readable zip archive ({exc})") from None
    with zf:
        members = [m for m in zf.infolist() if not m.filename.startswith("__MACOSX/")]
        if not members:
            raise DownloadError(f"{archive}: the archive is empty")
        for member in members:
            reason = unsafe_reason(member)
            if reason:
                raise DownloadError(f"{archive}: refused member {member.filename!r}: {reason}; nothing was extracted")
        top = _top_folder(members)
        final = target / (top or archive.stem)
        if final.exists():
            raise DownloadError(f"{final} already exists; move it away or pick another --to (it is never overwritten)")
        total = sum(m.file_size for m in members)
        try:
            target.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise DownloadError(f"{target}: cannot create the folder ({exc.strerror or exc})") from None
        free = shutil.disk_usage(target).free
        if total > free:
            raise DownloadError(f"{archive}: unpacking needs {total / 1e9:.1f} GB but {target} has {free / 1e9:.1f} GB free")
        for stale in target.glob(f".{final.name}.extracting-*"):  # left by a killed run
            shutil.rmtree(stale, ignore_errors=True)
        staging = Path(tempfile.mkdtemp(dir=target, prefix=f".{final.name}.extracting-"))
        try:
            root = staging.resolve()
            with progress_bar(total, f"Unpacking {archive.name}", enabled=show_progress, unit="bytes") as advance:
                for member in members:
                    path = (staging / member.filename.replace("\\", "/")).resolve()
                    if not path.is_relative_to(root):  # belt and braces after unsafe_reason
                        raise DownloadError(f"{archive}: refused member {member.filename!r}: path leaves the target folder")
                    if member.is_dir():
                        path.mkdir(parents=True, exist_ok=True)
                        continue
                    path.parent.mkdir(parents=True, exist_ok=True)
                    with zf.open(member) as source, open(path, "wb") as out:
                        shutil.copyfileobj(source, out, 1 << 20)
                    advance(member.file_size)
            unpacked = staging / top if top else staging
            public_mode(unpacked, directory=True)
            os.replace(unpacked, final)
        except (zipfile.BadZipFile, zlib.error, EOFError) as exc:
            raise DownloadError(f"{archive}: damaged archive ({exc}); nothing was extracted") from None
        except OSError as exc:
            raise DownloadError(f"{archive}: cannot unpack into {target} ({exc.strerror or exc}); "
                                "nothing was extracted") from None
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return final


def class_root(folder: Path) -> Path:
    """The folder that holds the class folders: skips single-folder wrappers like `Pandora_18k/Pandora_18k/`."""
    while True:
        entries = [e for e in folder.iterdir() if not e.name.startswith((".", "__MACOSX"))]
        if len(entries) == 1 and entries[0].is_dir():
            folder = entries[0]
        else:
            return folder
