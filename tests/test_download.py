import gzip
import hashlib
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from genlab.data import DATASETS, DatasetSource, DownloadError, RemoteFile, download_dataset
from genlab.data.download import ENV_MIRROR
from genlab.data.idx import encode_idx

NAMES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


@pytest.fixture
def tiny(monkeypatch):
    """Register a small dataset whose md5s are those of freshly generated IDX files."""
    rng = np.random.default_rng(1)
    raw = {
        "train_images": encode_idx(rng.integers(0, 256, (20, 28, 28), dtype=np.uint8)),
        "train_labels": encode_idx(rng.integers(0, 10, 20, dtype=np.uint8)),
        "test_images": encode_idx(rng.integers(0, 256, (8, 28, 28), dtype=np.uint8)),
        "test_labels": encode_idx(rng.integers(0, 10, 8, dtype=np.uint8)),
    }
    source = DatasetSource(
        name="tiny", files={role: RemoteFile(NAMES[role], md5(data)) for role, data in raw.items()},
        mirrors=(), local_dirs=(), class_names=tuple(str(i) for i in range(10)),
        channels=1, height=28, width=28)
    monkeypatch.setitem(DATASETS, "tiny", source)
    monkeypatch.delenv(ENV_MIRROR, raising=False)
    return {NAMES[role]: data for role, data in raw.items()}


class Server:
    """A real HTTP server on 127.0.0.1 serving `files` (URL path -> bytes)."""

    def __init__(self):
        self.files: dict[str, bytes] = {}
        self.drops = 0          # close the socket without answering this many requests
        self.requests: list[str] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                server.requests.append(self.path)
                if server.drops > 0:
                    server.drops -= 1
                    self.close_connection = True
                    return
                body = server.files.get(self.path)
                if body is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def publish(self, prefix: str, raw: dict[str, bytes], corrupt: bool = False) -> str:
        for name, data in raw.items():
            if corrupt:
                data = data[:-1] + bytes([data[-1] ^ 0xFF])
            self.files[f"/{prefix}/{name}.gz"] = gzip.compress(data, mtime=0)
        return f"{self.url}/{prefix}"

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    s = Server()
    yield s
    s.close()


def assert_stored(out_dir: Path, raw: dict[str, bytes]):
    assert sorted(p.name for p in out_dir.iterdir()) == sorted(raw)  # also: no temp files
    for name, data in raw.items():
        assert (out_dir / name).read_bytes() == data


def expected_md5s(raw):
    return {role: md5(raw[name]) for role, name in NAMES.items()}


def test_download_from_http_stores_decompressed(tiny, server, tmp_path, capsys):
    good = server.publish("good", tiny)
    out = tmp_path / "raw"
    result = download_dataset("tiny", out, mirrors=[good], backoff=0.01)
    assert result == expected_md5s(tiny)
    assert_stored(out, tiny)
    assert f"{good}/train-images-idx3-ubyte.gz" in capsys.readouterr().err


def test_corrupt_first_mirror_falls_back_without_retrying(tiny, server, tmp_path, capsys):
    bad = server.publish("bad", tiny, corrupt=True)
    good = server.publish("good", tiny)
    out = tmp_path / "raw"
    download_dataset("tiny", out, mirrors=[bad, good], backoff=0.01)
    assert_stored(out, tiny)
    assert sum(p.startswith("/bad/") for p in server.requests) == 4  # once per file
    err = capsys.readouterr().err
    assert f"from {good}/t10k-labels-idx1-ubyte.gz" in err and f"from {bad}" not in err


def test_dropped_connections_are_retried(tiny, server, tmp_path):
    good = server.publish("good", tiny)
    server.drops = 2
    out = tmp_path / "raw"
    download_dataset("tiny", out, mirrors=[good], retries=3, backoff=0.01)
    assert_stored(out, tiny)
    assert len(server.requests) == 4 + 2


def test_dropped_connections_without_retries_fail(tiny, server, tmp_path):
    good = server.publish("good", tiny)
    server.drops = 1
    with pytest.raises(DownloadError, match="RemoteDisconnected|reset|closed"):
        download_dataset("tiny", tmp_path / "raw", mirrors=[good], retries=0, backoff=0.01)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_all_sources_failing_lists_each_and_the_fix(tiny, server, tmp_path):
    bad = server.publish("bad", tiny, corrupt=True)
    missing = f"{server.url}/nothing-here"
    refused = f"http://127.0.0.1:{free_port()}"
    empty_dir = tmp_path / "empty"
    empty_dir.mkdir()
    absent_dir = tmp_path / "absent"
    out = tmp_path / "raw"

    with pytest.raises(DownloadError) as info:
        download_dataset("tiny", out, local_dirs=[str(absent_dir), str(empty_dir)],
                         mirrors=[bad, missing, refused], retries=1, backoff=0.01, timeout=5)

    message = str(info.value)
    assert isinstance(info.value, RuntimeError)
    for source in (str(absent_dir), str(empty_dir), bad, missing, refused):
        assert source in message
    assert "md5 mismatch" in message and "HTTP 404" in message and "2 attempts" in message
    assert "apt-get install dataset-tiny" in message and ENV_MIRROR in message
    assert list(out.iterdir()) == []  # no partial or temp files


def test_partial_failure_leaves_only_complete_files(tiny, server, tmp_path):
    # The mirror lacks the test labels: earlier files are stored whole, nothing else appears.
    partial = {name: data for name, data in tiny.items() if name != "t10k-labels-idx1-ubyte"}
    url = server.publish("partial", partial)
    out = tmp_path / "raw"
    with pytest.raises(DownloadError, match="t10k-labels-idx1-ubyte"):
        download_dataset("tiny", out, mirrors=[url], backoff=0.01)
    assert_stored(out, partial)


def test_env_mirror_directory_with_gz_comes_first(tiny, server, tmp_path, monkeypatch, capsys):
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    for name, data in tiny.items():
        (mirror / f"{name}.gz").write_bytes(gzip.compress(data))
    monkeypatch.setenv(ENV_MIRROR, str(mirror))
    bad = server.publish("bad", tiny, corrupt=True)
    out = tmp_path / "raw"

    download_dataset("tiny", out, mirrors=[bad])

    assert_stored(out, tiny)
    assert server.requests == []
    assert str(mirror / "train-images-idx3-ubyte.gz") in capsys.readouterr().err


def test_env_mirror_url(tiny, server, tmp_path, monkeypatch):
    monkeypatch.setenv(ENV_MIRROR, server.publish("good", tiny))
    download_dataset("tiny", tmp_path / "raw", backoff=0.01)
    assert_stored(tmp_path / "raw", tiny)


def test_local_dir_with_plain_files(tiny, tmp_path):
    local = tmp_path / "local"
    local.mkdir()
    for name, data in tiny.items():
        (local / name).write_bytes(data)
    out = tmp_path / "raw"
    assert download_dataset("tiny", out, local_dirs=[str(local)], mirrors=[]) == expected_md5s(tiny)
    assert_stored(out, tiny)


def test_existing_good_files_are_kept_and_bad_ones_replaced(tiny, tmp_path):
    out = tmp_path / "raw"
    out.mkdir()
    for name, data in tiny.items():
        (out / name).write_bytes(data)
    # No sources at all: every file must come from out_dir itself.
    assert download_dataset("tiny", out, local_dirs=[], mirrors=[]) == expected_md5s(tiny)

    (out / "train-labels-idx1-ubyte").write_bytes(b"stale")
    local = tmp_path / "local"
    local.mkdir()
    (local / "train-labels-idx1-ubyte").write_bytes(tiny["train-labels-idx1-ubyte"])
    download_dataset("tiny", out, local_dirs=[str(local)], mirrors=[])
    assert_stored(out, tiny)


def test_unknown_dataset(tmp_path):
    with pytest.raises(KeyError, match="no-such-set"):
        download_dataset("no-such-set", tmp_path)


@pytest.mark.skipif(not FASHION_DIR.is_dir(), reason="dataset-fashion-mnist package not installed")
def test_real_fashion_mnist_from_local_package(tmp_path, monkeypatch):
    monkeypatch.delenv(ENV_MIRROR, raising=False)
    source = DATASETS["fashion-mnist"]
    out = tmp_path / "raw"
    result = download_dataset("fashion-mnist", out, local_dirs=[str(FASHION_DIR)], mirrors=[])
    assert result == {role: f.md5 for role, f in source.files.items()}
    assert sorted(p.name for p in out.iterdir()) == sorted(f.name for f in source.files.values())
    for f in source.files.values():
        assert md5((out / f.name).read_bytes()) == f.md5
