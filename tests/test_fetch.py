"""`fink-t2 fetch` against a local HTTP server serving a nightly tarball of 50 real alerts."""

import http.server
import io
import re
import socket
import tarfile
import threading
import time
from pathlib import Path

import pytest

from fink_t2.cli import main
from fink_t2.fetch import FetchError, archive_url, check_archive, fetch_night
from fink_t2.paths import SHARED_DATA

NIGHT = "20200101"
NAME = f"ztf_public_{NIGHT}.tar.gz"


def _tarball(members) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


@pytest.fixture(scope="module")
def archive() -> bytes:
    files = sorted((Path(SHARED_DATA) / "ztf_alerts" / "night_20200101_avro").glob("*.avro"))
    assert len(files) == 50
    return _tarball((f"{NIGHT}/{f.name}", f.read_bytes()) for f in files)


class ArchiveHandler(http.server.BaseHTTPRequestHandler):
    """GET with Range support; knobs on the server: files, honour_range, cut_after (once), delay."""

    def do_GET(self):
        srv = self.server
        srv.requests.append(self.headers.get("Range"))
        time.sleep(srv.delay)
        data = srv.files.get(self.path.rsplit("/", 1)[-1])
        if data is None:
            self.send_error(404)
            return
        start = 0
        match = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range") or "")
        if match and srv.honour_range:
            start = int(match[1])
            if start >= len(data):
                self.send_error(416)
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        body = data[start:]
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if srv.cut_after is not None:  # drop the connection mid-transfer, the first time only
            body, srv.cut_after = body[: srv.cut_after], None
        try:
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout test)
            pass

    def log_message(self, *args):
        pass


@pytest.fixture
def server(archive):
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), ArchiveHandler)
    srv.daemon_threads = True
    srv.files, srv.honour_range, srv.cut_after, srv.delay, srv.requests = {NAME: archive}, True, None, 0.0, []
    srv.url = f"http://127.0.0.1:{srv.server_address[1]}/alerts/public/"
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def _fetch(server, dest, **kwargs):
    return fetch_night(NIGHT, dest=dest, base_url=server.url, progress=False, **kwargs)


def test_full_download_is_a_checked_tarball(server, archive, tmp_path, monkeypatch):
    monkeypatch.setenv("FINK_T2_ARCHIVE_URL", server.url)  # the env var gives the base URL
    assert archive_url(NIGHT) == server.url + NAME
    path = fetch_night(NIGHT, dest=tmp_path / "nights", progress=False)
    assert path == tmp_path / "nights" / NAME and path.read_bytes() == archive
    assert check_archive(path) == 50
    assert sorted(p.name for p in path.parent.iterdir()) == [NAME]  # no .part left
    assert fetch_night(NIGHT, dest=tmp_path / "nights", progress=False) == path and len(server.requests) == 1


def test_interrupted_transfer_resumes_to_an_identical_file(server, archive, tmp_path):
    server.cut_after = len(archive) // 3
    with pytest.raises(FetchError, match="run again to resume"):
        _fetch(server, tmp_path, retries=0)
    part = tmp_path / (NAME + ".part")
    assert part.stat().st_size == len(archive) // 3 and not (tmp_path / NAME).exists()
    path = _fetch(server, tmp_path)
    assert server.requests[-1] == f"bytes={len(archive) // 3}-"
    assert path.read_bytes() == archive and not part.exists()


def test_interruption_is_retried_within_one_call(server, archive, tmp_path):
    server.cut_after = 1000
    assert _fetch(server, tmp_path, retries=1).read_bytes() == archive
    assert server.requests == [None, "bytes=1000-"]


def test_server_ignoring_range_restarts_from_scratch(server, archive, tmp_path):
    server.honour_range = False
    (tmp_path / (NAME + ".part")).write_bytes(b"stale bytes of another try")
    assert _fetch(server, tmp_path).read_bytes() == archive
    assert server.requests == ["bytes=26-"]


def test_missing_night_is_a_one_line_error(server, tmp_path, capsys):
    rc = main(["fetch", "20200102", "--dest", str(tmp_path), "--base-url", server.url])
    err = capsys.readouterr().err
    assert rc == 1 and err.count("\n") == 1 and "no archive for night 20200102" in err and "404" in err
    assert list(tmp_path.iterdir()) == []


def test_connection_refused_is_a_one_line_error(tmp_path, capsys):
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    rc = main(["fetch", NIGHT, "--dest", str(tmp_path), "--base-url", f"http://127.0.0.1:{port}/", "--retries", "0"])
    err = capsys.readouterr().err
    assert rc == 1 and err.count("\n") == 1 and "network failure" in err and "refused" in err
    assert list(tmp_path.iterdir()) == []


def test_timeout_is_a_network_failure(server, tmp_path):
    server.delay = 1.0
    with pytest.raises(FetchError, match="network failure.*timed out"):
        _fetch(server, tmp_path, timeout=0.2, retries=0)
    assert not (tmp_path / NAME).exists()


def test_bad_date_is_a_one_line_error(tmp_path, capsys):
    assert main(["fetch", "2020-13-01", "--dest", str(tmp_path)]) == 2
    assert "bad night '2020-13-01'" in capsys.readouterr().err
    assert main(["fetch", "20201301", "--dest", str(tmp_path)]) == 2


@pytest.mark.parametrize("damage", ["truncated", "no_gzip_trailer", "garbage", "no_avro", "bad_avro"])
def test_corrupt_archive_is_refused_and_removed(server, archive, tmp_path, damage):
    server.files[NAME] = {
        "truncated": archive[: len(archive) // 2],
        "no_gzip_trailer": archive[:-4],
        "garbage": bytes(range(256)) * 100,
        "no_avro": _tarball([("README.txt", b"not an alert")]),
        "bad_avro": _tarball([("1.avro", b"Obj\x01 not really avro")]),
    }[damage]
    with pytest.raises(FetchError, match="not a readable tarball|holds no .avro"):
        _fetch(server, tmp_path)
    assert list(tmp_path.iterdir()) == []  # neither a final file nor a .part to resume from
