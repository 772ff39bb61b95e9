"""`charrnn corpus list/get`: the catalogue, downloads served from 127.0.0.1 through
$CHARRNN_CORPUS_MIRROR (no test touches the internet), checksums, the cache, and failures that
leave nothing behind."""

import hashlib
import json
import os
import socket
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from charrnn import catalogue
from helpers import assert_error, cli, ok

POEMS = ("the sea is grey and the lamp is lit,\nthe gulls are loud and the boat is late.\n" * 300).encode()
POEMS_PATH = "/texts/poems.txt"


class Server:
    """A local HTTP server: `files` maps a path to bytes; `cut` paths send half and hang up."""

    def __init__(self):
        self.files, self.cut, self.hits = {}, set(), []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                server.hits.append(self.path)
                body = server.files.get(self.path)
                if body is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body[: len(body) // 2] if self.path in server.cut else body)
                self.wfile.flush()
                self.close_connection = True

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.address = f"http://127.0.0.1:{self.httpd.server_port}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server(tmp_path, monkeypatch):
    """A mirror on 127.0.0.1 holding poems.txt, a catalogue naming it at a public-looking address,
    and an empty cache folder."""
    served = Server()
    served.files[POEMS_PATH] = POEMS
    listing = tmp_path / "catalogue.json"
    listing.write_text(json.dumps({"poems": {
        "title": "Two lines, many times", "url": "https://texts.example.org" + POEMS_PATH, "size": len(POEMS),
        "sha256": hashlib.sha256(POEMS).hexdigest(), "licence": "MIT"}}), encoding="utf-8")  # fmt: skip
    monkeypatch.setattr(catalogue, "CATALOGUE", listing)
    monkeypatch.setenv("CHARRNN_CORPUS_MIRROR", served.address)
    monkeypatch.setenv("CHARRNN_CACHE_DIR", str(tmp_path / "cache"))
    yield served
    served.close()


def cache_files(tmp_path):
    folder = tmp_path / "cache"
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_get_downloads_verifies_prints_the_path_and_a_second_get_uses_the_cache(server, tmp_path):
    first = ok("corpus", "get", "poems")
    path = Path(first.stdout.strip())
    assert first.stdout == f"{tmp_path / 'cache' / 'poems.txt'}\n"
    umask = os.umask(0)
    os.umask(umask)
    assert path.read_bytes() == POEMS and path.stat().st_mode & 0o777 == 0o666 & ~umask  # not pooch's 0600
    assert first.stderr.startswith(f"downloading poems ({len(POEMS):,} bytes) from {server.address}{POEMS_PATH}")
    assert server.hits == [POEMS_PATH]  # the mirror took the public address's place
    again = ok("corpus", "get", "poems")
    assert again.stdout == first.stdout and again.stderr == ""
    assert server.hits == [POEMS_PATH]  # no second download
    assert cache_files(tmp_path) == ["poems.txt"]


def test_progress_reaches_the_size_and_a_damaged_cached_file_is_fetched_again(server, tmp_path):
    seen = []
    path = catalogue.get_corpus("poems", progress=lambda received, total: seen.append((received, total)))
    assert seen[-1] == (len(POEMS), len(POEMS)) and [r for r, _ in seen] == sorted(r for r, _ in seen)
    path.write_bytes(POEMS[:-1] + b"?")  # same size, other bytes
    assert ok("corpus", "get", "poems", "-q").stderr == ""
    assert path.read_bytes() == POEMS and len(server.hits) == 2


def test_a_wrong_checksum_is_one_line_and_keeps_nothing(server, tmp_path):
    server.files[POEMS_PATH] = POEMS.replace(b"grey", b"blue")
    result = cli("corpus", "get", "poems", "-q")
    assert_error(result, 1, f"the file downloaded from {server.address}{POEMS_PATH} is not poems: its SHA-256 "
                            "differs from the catalogue's, so it was deleted")  # fmt: skip
    assert cache_files(tmp_path) == []


def test_a_download_cut_off_half_way_leaves_no_file(server, tmp_path):
    server.cut.add(POEMS_PATH)
    result = cli("corpus", "get", "poems")
    assert result.exit_code == 1
    downloading, error = result.stderr.splitlines()
    assert downloading.startswith("downloading poems")
    assert error == (
        f"charrnn: error: cannot download poems from {server.address}{POEMS_PATH}: "
        "the connection was cut off before the end of the file"
    )
    assert cache_files(tmp_path) == []


def test_offline_missing_file_unknown_name_and_bad_mirror_are_one_line_each(server, tmp_path, monkeypatch):
    del server.files[POEMS_PATH]
    result = cli("corpus", "get", "poems", "-q")
    assert_error(result, 1, f"cannot download poems from {server.address}{POEMS_PATH}: HTTP 404")
    with socket.socket() as s:  # a port where nothing listens: what offline looks like
        s.bind(("127.0.0.1", 0))
        nobody = f"http://127.0.0.1:{s.getsockname()[1]}"
    monkeypatch.setenv("CHARRNN_CORPUS_MIRROR", nobody)
    result = cli("corpus", "get", "poems", "-q")
    assert_error(result, 1, f"cannot download poems from {nobody}{POEMS_PATH}: connection refused "
                            "(offline, or no server there?)")  # fmt: skip
    assert_error(
        cli("corpus", "get", "verse"),
        2,
        "no corpus named 'verse' in the catalogue; choose one of poems (see `charrnn corpus list`)",
    )
    monkeypatch.setenv("CHARRNN_CORPUS_MIRROR", "127.0.0.1:8000")
    assert_error(
        cli("corpus", "get", "poems"),
        2,
        "CHARRNN_CORPUS_MIRROR='127.0.0.1:8000' is not an address like http://host:port",
    )
    assert cache_files(tmp_path) == []


def test_a_mirror_with_a_path_prefix(server, monkeypatch):
    server.files["/mirror" + POEMS_PATH] = server.files.pop(POEMS_PATH)
    monkeypatch.setenv("CHARRNN_CORPUS_MIRROR", server.address + "/mirror/")
    assert Path(ok("corpus", "get", "poems", "-q").stdout.strip()).read_bytes() == POEMS


def test_list_shows_source_size_licence_checksum_and_whether_it_is_here(server):
    listing = ok("corpus", "list").stdout
    assert listing.startswith(f"poems  {len(POEMS):,} bytes, not downloaded yet\n    Two lines, many times\n")
    assert "    source   https://texts.example.org/texts/poems.txt\n" in listing
    assert f"    sha256   {hashlib.sha256(POEMS).hexdigest()}\n" in listing and "    licence  MIT\n" in listing
    assert json.loads(ok("corpus", "list", "--json").stdout)[0]["here"] is False
    ok("corpus", "get", "poems")
    rows = json.loads(ok("corpus", "list", "--json").stdout)
    assert rows[0]["here"] is True and Path(rows[0]["path"]).read_bytes() == POEMS


def test_the_shipped_catalogue_matches_its_bundled_files():
    shipped = catalogue.entries()
    assert {"lighthouse", "names", "tinyshakespeare"} <= {e.name for e in shipped}
    for entry in shipped:
        assert entry.size > 0 and len(entry.sha256) == 64 and entry.licence and bool(entry.url) != bool(entry.file)
        if entry.file:
            path = catalogue.get_corpus(entry.name)
            assert path == catalogue.FOLDER / entry.file
            assert path.stat().st_size == entry.size and catalogue.sha256_of(path) == entry.sha256


def test_tinyshakespeare_from_a_mirror_matches_its_catalogue_entry(shakespeare, tmp_path, monkeypatch):
    """The real entry, served from the copy beside the project at the path of its public address."""
    entry = catalogue.find("tinyshakespeare")
    served = Server()
    served.files[catalogue.urlsplit(entry.url).path] = shakespeare.read_bytes()
    monkeypatch.setenv("CHARRNN_CORPUS_MIRROR", served.address)
    monkeypatch.setenv("CHARRNN_CACHE_DIR", str(tmp_path / "cache"))
    try:
        path = Path(ok("corpus", "get", "tinyshakespeare", "-q").stdout.strip())
    finally:
        served.close()
    assert path.read_bytes() == shakespeare.read_bytes()


def test_train_on_what_corpus_get_prints(tmp_path):
    """The shell idiom of the README: charrnn train "$(charrnn corpus get names)"."""
    charrnn = f"{sys.executable} -m charrnn"
    script = (f'{charrnn} train "$({charrnn} corpus get names)" --lines --hidden 8 --seq 8 --batch 4 --steps 3 -q '
              f"&& {charrnn} info --json")  # fmt: skip
    done = subprocess.run(["bash", "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    info = json.loads(done.stdout)
    assert info["steps"] == 3 and info["lines"] is True and info["corpus"]["paths"][0].endswith("names.txt")
