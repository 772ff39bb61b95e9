"""Corpora on demand: the catalogue in charrnn/corpora/catalogue.json, and fetching its entries.

An entry is either bundled (`file`: a text that ships inside the package, written for charrnn) or
public (`url`: downloaded once into the corpus folder of the user cache, see charrnn.paths). Both
kinds carry a size and a SHA-256, and a file is handed out only once its digest matches.

Downloads go through pooch: it streams into a temporary file beside the target and renames it
only when the digest matches, deleting it on any failure (a dropped connection, a wrong digest,
Ctrl-C), so a half-downloaded corpus never sits at the path we print. $CHARRNN_CORPUS_MIRROR
(`http://host:port`, optionally with a path prefix) replaces the scheme and host of every address:
for a local mirror, and for the tests, which serve files on 127.0.0.1 and never touch the internet.
"""

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional
from urllib.parse import urlsplit

from charrnn.errors import CorpusError, UsageError
from charrnn.paths import corpus_folder

FOLDER = Path(__file__).resolve().parent / "corpora"
CATALOGUE = FOLDER / "catalogue.json"
MIRROR = "CHARRNN_CORPUS_MIRROR"
TIMEOUT_S = 30  # per connection attempt and between received chunks, not for the whole file


@dataclass(frozen=True)
class Entry:
    name: str
    title: str
    size: int  # bytes
    sha256: str
    licence: str
    url: Optional[str] = None  # public: where it is downloaded from
    file: Optional[str] = None  # bundled: its file in charrnn/corpora/
    lines: bool = False  # a list of records: train it with --lines

    @property
    def source(self):
        return self.url or "bundled with charrnn"

    def as_dict(self):
        return {"name": self.name, "title": self.title, "size": self.size, "licence": self.licence,
                "source": self.source, "sha256": self.sha256, "lines": self.lines}  # fmt: skip


def entries(catalogue=None):
    """Every entry of the catalogue (a JSON file; default CATALOGUE), in its order."""
    data = json.loads(Path(catalogue or CATALOGUE).read_text(encoding="utf-8"))
    return [Entry(name=name, **fields) for name, fields in data.items()]


def find(name, catalogue=None):
    known = {entry.name: entry for entry in entries(catalogue)}
    if name not in known:
        raise UsageError(f"no corpus named {name!r} in the catalogue; choose one of {', '.join(known)} "
                         f"(see `charrnn corpus list`)")  # fmt: skip
    return known[name]


def address(url):
    """`url` with its scheme and host replaced by $CHARRNN_CORPUS_MIRROR's, when that is set."""
    mirror = os.environ.get(MIRROR, "").strip()
    if not mirror:
        return url
    parts = urlsplit(mirror)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise UsageError(f"{MIRROR}={mirror!r} is not an address like http://host:port")
    path = urlsplit(url).path
    return f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}{path}"


def sha256_of(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def cached_path(entry):
    """Where the entry is (bundled) or will be (public) on this machine."""
    return FOLDER / entry.file if entry.file else corpus_folder() / f"{entry.name}.txt"


def is_ready(entry):
    """The file is there and its digest matches: `get` would need no download."""
    path = cached_path(entry)
    return path.is_file() and path.stat().st_size == entry.size and sha256_of(path) == entry.sha256


def get_corpus(name, *, progress: Optional[Callable[[int, int], None]] = None, catalogue=None):
    """The path of corpus `name`, downloading and verifying it first when it is not cached.

    `progress(received_bytes, total_bytes)` is called with (0, the catalogue's size) when a download
    starts, then as it goes (total 0 when the server does not say); never when the file is here.
    """
    entry = find(name, catalogue)
    path = cached_path(entry)
    if entry.file:
        if not is_ready(entry):
            raise CorpusError(f"the bundled corpus {path} does not match its catalogue entry; reinstall charrnn")
        return path
    if is_ready(entry):
        return path
    return _download(entry, address(entry.url), path, progress)


class _Progress:
    """pooch's protocol for a custom progress bar (total, update, reset, close), as a callback."""

    def __init__(self, report):
        self.report, self.total, self.received = report, 0, 0

    def update(self, n):
        self.received += n  # pooch counts whole chunks of 1,024 bytes, so the last one overshoots
        if self.total:
            self.received = min(self.received, self.total)
        self.report(self.received, self.total)

    def reset(self):
        self.received = 0

    def close(self):
        pass


def _download(entry, url, path, progress):
    import pooch
    import requests

    pooch.get_logger().setLevel("WARNING")  # its "Downloading file ..." line; the CLI says what it does
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise CorpusError(f"cannot make the corpus folder {path.parent}: {err.strerror or err}") from None
    downloader = pooch.HTTPDownloader(progressbar=_Progress(progress) if progress else False, timeout=TIMEOUT_S)
    if progress:
        progress(0, entry.size)
    try:
        pooch.retrieve(url, known_hash=f"sha256:{entry.sha256}", fname=path.name, path=path.parent,
                       downloader=downloader)  # fmt: skip
    except ValueError as err:
        if "hash" not in str(err).lower():
            raise
        raise CorpusError(f"the file downloaded from {url} is not {entry.name}: its SHA-256 differs from the "
                          f"catalogue's, so it was deleted") from None  # fmt: skip
    except requests.exceptions.HTTPError as err:
        raise CorpusError(f"cannot download {entry.name} from {url}: HTTP {err.response.status_code}") from None
    except requests.exceptions.RequestException as err:
        raise CorpusError(f"cannot download {entry.name} from {url}: {_reason(err)}") from None
    except OSError as err:
        raise CorpusError(f"cannot write {path}: {err.strerror or err}") from None
    _readable_as_umask_says(path)
    return path


def _readable_as_umask_says(path):
    """pooch's temporary file is made 0600; a corpus is an ordinary file (0644 under umask 022)."""
    mask = os.umask(0)
    os.umask(mask)
    try:
        os.chmod(path, 0o666 & ~mask)
    except OSError:
        pass  # not ours to change (another user's cache): it is readable to us, which is what counts


def _reason(err):
    """The innermost cause of a requests failure, in a few words (requests nests them deeply)."""
    import requests

    if isinstance(err, requests.exceptions.ConnectionError):
        text = str(err)
        if "Connection refused" in text:
            return "connection refused (offline, or no server there?)"
        if "Name or service not known" in text or "nodename nor servname" in text or "Temporary failure" in text:
            return "the host name does not resolve (offline?)"
        if "timed out" in text.lower():
            return f"no answer within {TIMEOUT_S} s"
        return "the connection failed or was cut off (offline?)"
    if isinstance(err, requests.exceptions.ChunkedEncodingError):
        return "the connection was cut off before the end of the file"
    if isinstance(err, requests.exceptions.Timeout):
        return f"no answer within {TIMEOUT_S} s"
    return type(err).__name__
