"""`artstyle download`: resume after a cut connection, checksums, and zips that try to escape."""

from __future__ import annotations

import hashlib
import io
import stat
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from synth import make_tree
from typer.testing import CliRunner

from artstyle import DownloadError, get_dataset, scan_dataset
from artstyle.apps.cli import app
from artstyle.data.archive import extract_zip
from artstyle.data.download import fetch


def _zip_tree(tree: Path, top: str = "Pandora_18k") -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(tree.rglob("*")):
            zf.write(path, f"{top}/{path.relative_to(tree).as_posix()}")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def archive_bytes(tmp_path_factory) -> bytes:
    tree = make_tree(tmp_path_factory.mktemp("tree"), styles=["01_StripedArt", "05_Rings"], artists=2, per_artist=3)
    return _zip_tree(tree)


class Server:
    """127.0.0.1 file server with Range support that can cut its first answers half way."""

    def __init__(self, body: bytes, *, cuts: int = 0, ranges: bool = True):
        self.body, self.cuts, self.ranges = body, cuts, ranges
        self.requests: list[str | None] = []  # the Range header of each GET
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:
                wanted = self.headers.get("Range")
                server.requests.append(wanted)
                start = int(wanted.split("=")[1].split("-")[0]) if wanted and server.ranges else 0
                if start >= len(server.body) and wanted:
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{len(server.body)}")
                    self.end_headers()
                    return
                chunk = server.body[start:]
                self.send_response(206 if start else 200)
                if start:
                    self.send_header("Content-Range", f"bytes {start}-{len(server.body) - 1}/{len(server.body)}")
                self.send_header("Content-Length", str(len(chunk)))
                self.end_headers()
                if server.cuts > 0:  # promise everything, send half, hang up
                    server.cuts -= 1
                    self.wfile.write(chunk[: len(chunk) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(chunk)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/Download/Pandora_18k.zip"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def serve_zip(archive_bytes):
    servers: list[Server] = []

    def start(**options) -> Server:
        servers.append(Server(archive_bytes, **options))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


def test_a_cut_download_resumes_where_it_stopped_and_verifies(serve_zip, archive_bytes, tmp_path):
    server = serve_zip(cuts=1)
    digest = hashlib.sha256(archive_bytes).hexdigest()
    path = fetch(server.url, tmp_path / "a.zip", sha256=digest, backoff=0, show_progress=False)
    assert path.read_bytes() == archive_bytes
    half = len(archive_bytes) // 2
    assert server.requests == [None, f"bytes={half}-"]  # the second request asked only for the rest
    assert not (tmp_path / "a.zip.part").exists()


def test_a_server_without_ranges_restarts_and_still_ends_whole(serve_zip, archive_bytes, tmp_path):
    server = serve_zip(cuts=2, ranges=False)
    path = fetch(server.url, tmp_path / "a.zip", backoff=0, show_progress=False)
    assert path.read_bytes() == archive_bytes and len(server.requests) == 3


def test_a_bad_checksum_is_an_error_and_leaves_no_archive(serve_zip, tmp_path):
    server = serve_zip()
    with pytest.raises(DownloadError, match="SHA-256 mismatch"):
        fetch(server.url, tmp_path / "a.zip", sha256="0" * 64, backoff=0, show_progress=False)
    assert list(tmp_path.iterdir()) == []


def test_giving_up_keeps_the_partial_file_for_the_next_run(serve_zip, archive_bytes, tmp_path):
    server = serve_zip(cuts=1)
    cut = server.httpd.RequestHandlerClass.do_GET

    def cut_then_go_down(handler) -> None:  # the link dies for good after the first half
        cut(handler)
        server.httpd.socket.close()

    server.httpd.RequestHandlerClass.do_GET = cut_then_go_down
    with pytest.raises(DownloadError, match=r"gave up after 2 retries .*run again to resume"):
        fetch(server.url, tmp_path / "a.zip", retries=2, backoff=0, show_progress=False)
    assert (tmp_path / "a.zip.part").stat().st_size == len(archive_bytes) // 2
    assert not (tmp_path / "a.zip").exists()

    mirror = serve_zip()
    path = fetch(mirror.url, tmp_path / "a.zip", backoff=0, show_progress=False)
    assert path.read_bytes() == archive_bytes
    assert mirror.requests == [f"bytes={len(archive_bytes) // 2}-"]


def test_download_command_unpacks_a_trainable_tree_and_a_rerun_does_nothing(serve_zip, archive_bytes, tmp_path):
    server = serve_zip(cuts=1)
    digest = hashlib.sha256(archive_bytes).hexdigest()
    runner = CliRunner()
    args = ["-q", "download", "pandora18k", "--to", str(tmp_path / "pandora"), "--url", server.url, "--sha256", digest]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    data = tmp_path / "pandora" / "Pandora_18k"
    assert f"artstyle train {data}" in result.output
    dataset = scan_dataset(data, show_progress=False)
    assert dataset.labels == ["rings", "striped art"] and len(dataset.records) == 12
    assert sorted(p.name for p in (tmp_path / "pandora").iterdir()) == [".artstyle-download.json", "Pandora_18k", "Pandora_18k.zip"]

    requests = len(server.requests)
    again = runner.invoke(app, args)
    assert again.exit_code == 0 and "nothing to do" in again.output
    assert len(server.requests) == requests  # no network at all


def test_an_archive_on_disk_is_unpacked_and_left_untouched(archive_bytes, tmp_path):
    archive = tmp_path / "mine.zip"
    archive.write_bytes(archive_bytes)
    before = archive.stat().st_mtime_ns
    result = get_dataset("pandora18k", tmp_path / "out", archive=archive, show_progress=False)
    assert result.data == tmp_path / "out" / "Pandora_18k" and (result.data / "05_Rings").is_dir()
    assert archive.read_bytes() == archive_bytes and archive.stat().st_mtime_ns == before
    with pytest.raises(DownloadError, match="SHA-256 mismatch"):
        get_dataset("pandora18k", tmp_path / "other", archive=archive, sha256="1" * 64, show_progress=False)
    assert not (tmp_path / "other" / "Pandora_18k").exists()


def _evil_zip(path: Path, name: str, *, symlink: bool = False) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("data/ok/fine.txt", "harmless")
        info = zipfile.ZipInfo(name)
        if symlink:
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            zf.writestr(info, "/etc/passwd")
        else:
            zf.writestr(info, "pwned")
    return path


@pytest.mark.parametrize(
    ("member", "symlink", "reason"),
    [
        ("../escaped.txt", False, r"leaves the target"),
        ("data/../../escaped.txt", False, r"leaves the target"),
        ("/tmp/artstyle-absolute-escape.txt", False, "absolute path"),
        ("data/ok/link", True, "symbolic link"),
    ],
)
def test_a_malicious_zip_is_refused_and_nothing_is_written(tmp_path, member, symlink, reason):
    archive = _evil_zip(tmp_path / "evil.zip", member, symlink=symlink)
    target = tmp_path / "deep" / "target"
    with pytest.raises(DownloadError, match=reason):
        extract_zip(archive, target, show_progress=False)
    assert not (tmp_path / "escaped.txt").exists() and not (tmp_path / "deep" / "escaped.txt").exists()
    assert not Path("/tmp/artstyle-absolute-escape.txt").exists()
    assert not target.exists() or list(target.iterdir()) == []


def test_a_zip_bomb_is_refused(tmp_path):
    archive = tmp_path / "bomb.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("data/zeros.bin", b"\0" * (20 << 20))
    assert archive.stat().st_size < 100_000
    with pytest.raises(DownloadError, match="compression ratio"):
        extract_zip(archive, tmp_path / "target", show_progress=False)
    assert not (tmp_path / "target").exists() or list((tmp_path / "target").iterdir()) == []


def test_an_existing_folder_is_never_overwritten(archive_bytes, tmp_path):
    archive = tmp_path / "a.zip"
    archive.write_bytes(archive_bytes)
    mine = tmp_path / "target" / "Pandora_18k"
    mine.mkdir(parents=True)
    (mine / "notes.txt").write_text("my notes")
    with pytest.raises(DownloadError, match="never overwritten"):
        extract_zip(archive, tmp_path / "target", show_progress=False)
    assert [p.name for p in mine.iterdir()] == ["notes.txt"]


def test_an_error_page_instead_of_a_zip_is_removed_with_a_clear_error(tmp_path):
    server = Server(b"<html><body>Service temporarily unavailable</body></html>")
    try:
        with pytest.raises(DownloadError, match="not a zip archive; it was removed"):
            get_dataset("pandora18k", tmp_path, url=server.url, backoff=0, show_progress=False)
    finally:
        server.close()
    assert list(tmp_path.iterdir()) == []


def test_a_local_write_failure_stops_at_once_instead_of_retrying(serve_zip, tmp_path):
    server = serve_zip()
    (tmp_path / "a-file").write_text("in the way")
    with pytest.raises(DownloadError, match="cannot create the folder"):
        fetch(server.url, tmp_path / "a-file" / "a.zip", backoff=0, show_progress=False)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "a.zip.part").mkdir()  # the partial file cannot be opened
    with pytest.raises(DownloadError, match="cannot write"):
        fetch(server.url, tmp_path / "out" / "a.zip", backoff=0, show_progress=False)
    assert len(server.requests) == 1  # one attempt, no retries


@pytest.mark.parametrize("method", [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED])
def test_a_damaged_archive_is_one_clear_error_and_leaves_nothing(tmp_path, method):
    archive = tmp_path / "damaged.zip"
    payload = bytes(range(256)) * 400 + b"".join(i.to_bytes(4, "little") for i in range(20000))
    with zipfile.ZipFile(archive, "w", method) as zf:
        zf.writestr("data/a.bin", payload)
    raw = bytearray(archive.read_bytes())
    for offset in range(200, 1200, 97):  # scribble over the member's data, not the directory at the end
        raw[offset] ^= 0xFF
    archive.write_bytes(bytes(raw))
    with pytest.raises(DownloadError, match="damaged archive"):
        extract_zip(archive, tmp_path / "target", show_progress=False)
    assert list((tmp_path / "target").iterdir()) == []
