"""download_dataset against real sources: directories and a real HTTP server on 127.0.0.1."""
import gzip
import hashlib
import os
import socket
import time
from pathlib import Path

import numpy as np
import pytest
from httpserver import GDRIVE_FORM_ACTION, GDRIVE_PATH, FileServer

from genlab.config import ParamsError
from genlab.data import download as download_module
from genlab.data.download import DownloadError, download_dataset
from genlab.data.sources import DATASETS, DatasetSource, RemoteFile
from genlab.data.download import ENV_MIRROR
from genlab.data.idx import encode_idx

NAMES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")
ARCHIVE = "/files/archive.tgz"
CUT = 100_000  # bytes sent before a dropped connection


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def register(monkeypatch, name: str, files: dict[str, RemoteFile]) -> DatasetSource:
    source = DatasetSource(name=name, files=files, format="idx", channels=1, side=28,
                           licence=f"{name} terms: research only", homepage=f"https://example.org/{name}")
    monkeypatch.setitem(DATASETS, name, source)
    return source


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch) -> Path:
    """Every test gets its own download cache and no mirror from the environment."""
    monkeypatch.setenv("GENLAB_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv(ENV_MIRROR, raising=False)
    return tmp_path / "cache" / "downloads"


@pytest.fixture
def server():
    with FileServer() as s:
        yield s


@pytest.fixture
def tiny(monkeypatch) -> dict[str, bytes]:
    """A Fashion-MNIST-like dataset (content scope: md5 of the decompressed IDX files)."""
    rng = np.random.default_rng(1)
    raw = {
        "train_images": encode_idx(rng.integers(0, 256, (20, 28, 28), dtype=np.uint8)),
        "train_labels": encode_idx(rng.integers(0, 10, 20, dtype=np.uint8)),
        "test_images": encode_idx(rng.integers(0, 256, (8, 28, 28), dtype=np.uint8)),
        "test_labels": encode_idx(rng.integers(0, 10, 8, dtype=np.uint8)),
    }
    register(monkeypatch, "tiny", {role: RemoteFile(NAMES[role], md5(data)) for role, data in raw.items()})
    return {NAMES[role]: data for role, data in raw.items()}


@pytest.fixture
def blob(monkeypatch) -> bytes:
    """A one-archive dataset (file scope, sha256), large enough for a dropped connection mid-body."""
    data = np.random.default_rng(2).integers(0, 256, 300_000, dtype=np.uint8).tobytes()
    register(monkeypatch, "blob", {"archive": RemoteFile("archive.tgz", sha256(data), algorithm="sha256",
                                                         scope="file")})
    return data


def publish(server: FileServer, prefix: str, raw: dict[str, bytes], corrupt: bool = False) -> str:
    """Serve each file gzipped as `<prefix>/<name>.gz`, as Fashion-MNIST's mirrors do."""
    for name, data in raw.items():
        if corrupt:
            data = data[:-1] + bytes([data[-1] ^ 0xFF])
        server.files[f"/{prefix}/{name}.gz"] = gzip.compress(data, mtime=0)
    return f"{server.url}/{prefix}"


def write_dir(directory: Path, raw: dict[str, bytes], gz: bool) -> Path:
    directory.mkdir()
    for name, data in raw.items():
        if gz:
            (directory / f"{name}.gz").write_bytes(gzip.compress(data))
        else:
            (directory / name).write_bytes(data)
    return directory


def assert_stored(out_dir: Path, raw: dict[str, bytes]):
    assert sorted(p.name for p in out_dir.iterdir()) == sorted(raw)  # also: no temp files
    for name, data in raw.items():
        assert (out_dir / name).read_bytes() == data


def content_records(raw: dict[str, bytes]) -> dict[str, dict]:
    return {role: {"name": name, "algorithm": "md5", "scope": "content", "checksum": md5(raw[name])}
            for role, name in NAMES.items()}


def closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


def download_blob(out: Path, server: FileServer, **kwargs) -> dict[str, dict]:
    return download_dataset("blob", out, mirrors=[f"{server.url}/files"], backoff=0, **kwargs)


# --------------------------------------------------------------------------- content scope (Fashion-MNIST)
def test_content_scope_from_http_stores_decompressed_and_prints_terms(tiny, server, tmp_path, capsys):
    good = publish(server, "good", tiny)
    out = tmp_path / "raw"
    assert download_dataset("tiny", out, mirrors=[good], backoff=0) == content_records(tiny)
    assert_stored(out, tiny)
    err = capsys.readouterr().err
    assert f"[genlab.data] train-images-idx3-ubyte: from {good}/train-images-idx3-ubyte.gz" in err
    assert "[genlab.data] tiny: tiny terms: research only" in err
    assert "[genlab.data] tiny: homepage https://example.org/tiny" in err


def test_corrupt_first_mirror_falls_back_without_retrying(tiny, server, tmp_path, capsys):
    bad = publish(server, "bad", tiny, corrupt=True)
    good = publish(server, "good", tiny)
    out = tmp_path / "raw"
    download_dataset("tiny", out, mirrors=[bad, good], backoff=0)
    assert_stored(out, tiny)
    assert sum(p.startswith("/bad/") for p in server.paths()) == 4  # once per file
    err = capsys.readouterr().err
    assert f"from {good}/t10k-labels-idx1-ubyte.gz" in err and f"from {bad}" not in err


def test_all_sources_failing_lists_each_and_the_fix(tiny, server, tmp_path, cache):
    bad = publish(server, "bad", tiny, corrupt=True)
    missing = f"{server.url}/nothing-here"
    refused = closed_port_url()
    empty_dir = tmp_path / "empty"
    empty_dir.mkdir()
    absent_dir = tmp_path / "absent"
    out = tmp_path / "raw"

    with pytest.raises(DownloadError) as info:
        download_dataset("tiny", out, local_dirs=[str(absent_dir), str(empty_dir)],
                         mirrors=[bad, missing, refused], backoff=0, timeout=5)

    message = str(info.value)
    for source in (str(absent_dir), str(empty_dir), bad, missing, refused):
        assert source in message
    assert f"{absent_dir}: no such directory" in message
    assert f"directory {empty_dir} has no t10k-labels-idx1-ubyte.gz or t10k-labels-idx1-ubyte" in message
    assert "md5 mismatch of the decompressed content: expected " in message
    assert "HTTP 404" in message and "Connection refused" in message
    assert ENV_MIRROR in message and "datasets.tiny.source" in message and "apt-get" not in message
    assert message.count("sources tried:") == 4  # every file, not just the first
    assert not out.exists()
    assert not list(cache.glob("*.part"))


def test_failure_of_one_file_writes_nothing_and_caches_the_others(tiny, server, tmp_path, capsys):
    partial = {name: data for name, data in tiny.items() if name != "t10k-labels-idx1-ubyte"}
    url = publish(server, "partial", partial)
    out = tmp_path / "raw"
    with pytest.raises(DownloadError, match="could not obtain 1 file.*\nt10k-labels-idx1-ubyte "):
        download_dataset("tiny", out, mirrors=[url], backoff=0)
    assert not out.exists()

    rest = publish(server, "rest", {"t10k-labels-idx1-ubyte": tiny["t10k-labels-idx1-ubyte"]})
    requests_before = len(server.requests)
    download_dataset("tiny", out, mirrors=[rest], backoff=0)
    assert_stored(out, tiny)
    assert server.paths()[requests_before:] == ["/rest/t10k-labels-idx1-ubyte.gz"]
    assert capsys.readouterr().err.count("from the download cache") == 3


def test_env_mirror_directory_with_gz_comes_first(tiny, server, tmp_path, monkeypatch, capsys):
    mirror = write_dir(tmp_path / "mirror", tiny, gz=True)
    monkeypatch.setenv(ENV_MIRROR, str(mirror))
    out = tmp_path / "raw"
    download_dataset("tiny", out, mirrors=[publish(server, "bad", tiny, corrupt=True)])
    assert_stored(out, tiny)
    assert server.requests == []
    assert str(mirror / "train-images-idx3-ubyte.gz") in capsys.readouterr().err


def test_env_mirror_with_one_folder_per_dataset_takes_the_datasets_own(tiny, tmp_path, monkeypatch):
    """A team mirror of several datasets whose files share names (MNIST, Fashion-MNIST)."""
    impostor = {name: data[::-1] for name, data in tiny.items()}  # same names, other bytes
    write_dir(tmp_path / "mirror", impostor, gz=True)
    write_dir(tmp_path / "mirror" / "tiny", tiny, gz=True)
    monkeypatch.setenv(ENV_MIRROR, str(tmp_path / "mirror"))
    download_dataset("tiny", tmp_path / "raw", local_dirs=[], mirrors=[])
    assert_stored(tmp_path / "raw", tiny)


def test_env_mirror_url(tiny, server, tmp_path, monkeypatch):
    monkeypatch.setenv(ENV_MIRROR, publish(server, "good", tiny))
    download_dataset("tiny", tmp_path / "raw", backoff=0)
    assert_stored(tmp_path / "raw", tiny)


def test_env_mirror_directory_missing_a_file_names_both(tiny, tmp_path, monkeypatch):
    mirror = write_dir(tmp_path / "mirror", {n: d for n, d in tiny.items() if n != "train-labels-idx1-ubyte"},
                       gz=True)
    monkeypatch.setenv(ENV_MIRROR, str(mirror))
    out = tmp_path / "raw"
    with pytest.raises(DownloadError) as info:
        download_dataset("tiny", out, local_dirs=[], mirrors=[])
    assert f"directory {mirror} has no train-labels-idx1-ubyte.gz or train-labels-idx1-ubyte" in str(info.value)
    assert "could not obtain 1 file(s)" in str(info.value)
    assert not out.exists()


def test_source_comes_before_env_mirror(tiny, tmp_path, monkeypatch):
    monkeypatch.setenv(ENV_MIRROR, closed_port_url())
    plain = write_dir(tmp_path / "plain", tiny, gz=False)
    out = tmp_path / "raw"
    assert download_dataset("tiny", out, source=str(plain), mirrors=[]) == content_records(tiny)
    assert_stored(out, tiny)


def test_existing_good_files_are_kept_and_bad_ones_replaced(tiny, tmp_path):
    out = write_dir(tmp_path / "raw", tiny, gz=False)
    # No sources at all: every file must come from out_dir itself.
    assert download_dataset("tiny", out, local_dirs=[], mirrors=[]) == content_records(tiny)

    (out / "train-labels-idx1-ubyte").write_bytes(b"stale")
    local = write_dir(tmp_path / "local", {"train-labels-idx1-ubyte": tiny["train-labels-idx1-ubyte"]}, gz=False)
    download_dataset("tiny", out, local_dirs=[str(local)], mirrors=[])
    assert_stored(out, tiny)


def test_fashion_mnist_failure_suggests_the_debian_package(tmp_path):
    with pytest.raises(DownloadError, match="apt-get install dataset-fashion-mnist"):
        download_dataset("fashion-mnist", tmp_path / "raw", local_dirs=[str(tmp_path)], mirrors=[])


@pytest.mark.skipif(not FASHION_DIR.is_dir(), reason="dataset-fashion-mnist package not installed")
def test_real_fashion_mnist_from_local_package(tmp_path):
    source = DATASETS["fashion-mnist"]
    out = tmp_path / "raw"
    result = download_dataset("fashion-mnist", out, local_dirs=[str(FASHION_DIR)], mirrors=[])
    assert {role: r["checksum"] for role, r in result.items()} == {r: f.checksum for r, f in source.files.items()}
    for f in source.files.values():
        assert md5((out / f.name).read_bytes()) == f.checksum


# --------------------------------------------------------------------------- file scope (MNIST, archives)
def test_file_scope_gz_is_verified_compressed_and_stored_as_is(tiny, server, tmp_path, monkeypatch, cache):
    gz = {f"{name}.gz": gzip.compress(data, mtime=0) for name, data in tiny.items()}
    register(monkeypatch, "mnisty",
             {role: RemoteFile(f"{name}.gz", md5(gz[f"{name}.gz"]), scope="file") for role, name in NAMES.items()})
    server.files.update({f"/mnist/{name}": data for name, data in gz.items()})
    out = tmp_path / "raw"
    result = download_dataset("mnisty", out, mirrors=[f"{server.url}/mnist"], backoff=0)
    assert result["train_images"] == {"name": "train-images-idx3-ubyte.gz", "algorithm": "md5", "scope": "file",
                                      "checksum": md5(gz["train-images-idx3-ubyte.gz"])}
    assert_stored(out, gz)
    stored = out / "train-images-idx3-ubyte.gz"
    entry = cache / f"md5-{md5(gz['train-images-idx3-ubyte.gz'])}"
    assert os.stat(stored).st_ino == os.stat(entry).st_ino  # hard-linked from the cache, not copied


def test_sha256_checksum(blob, server, tmp_path):
    server.files[ARCHIVE] = blob
    result = download_blob(tmp_path / "raw", server)
    assert result == {"archive": {"name": "archive.tgz", "algorithm": "sha256", "scope": "file",
                                  "checksum": sha256(blob)}}
    assert (tmp_path / "raw" / "archive.tgz").read_bytes() == blob


def test_checksum_mismatch_reports_expected_and_got_and_discards(blob, server, tmp_path, cache):
    server.files[ARCHIVE] = blob[::-1]
    out = tmp_path / "raw"
    with pytest.raises(DownloadError) as info:
        download_blob(out, server)
    assert f"sha256 mismatch: expected {sha256(blob)}, got {sha256(blob[::-1])}" in str(info.value)
    assert not out.exists()
    assert sorted(p.name for p in cache.iterdir()) == [f"sha256-{sha256(blob)}.lock"]  # no part, no entry


def test_checksum_override_replaces_the_registry_with_a_warning(blob, server, tmp_path, capsys):
    server.files[ARCHIVE] = blob[:1000]  # a re-packaged, smaller archive
    result = download_blob(tmp_path / "raw", server, checksums={"archive": f"md5:{md5(blob[:1000]).upper()}"})
    assert result["archive"]["algorithm"] == "md5" and result["archive"]["checksum"] == md5(blob[:1000])
    assert (tmp_path / "raw" / "archive.tgz").read_bytes() == blob[:1000]
    err = capsys.readouterr().err
    assert ("[genlab.data] warning: datasets.blob.checksums.archive replaces the registry's checksum of "
            f"archive.tgz: sha256:{sha256(blob)} -> md5:{md5(blob[:1000])}") in err


@pytest.mark.parametrize("checksums, match", [
    ({"archive": "md5:abc"}, r"datasets\.blob\.checksums\.archive: got 'md5:abc'; expected 'md5:' and 32 hex"),
    ({"archive": "crc32:" + "0" * 8}, r"got 'crc32:0+'"),
    ({"labels": "md5:" + "0" * 32}, r"datasets\.blob\.checksums\.labels: unknown file role; allowed: archive"),
])
def test_bad_checksum_override_is_a_params_error(blob, tmp_path, checksums, match):
    with pytest.raises(ParamsError, match=match):
        download_dataset("blob", tmp_path / "raw", checksums=checksums, mirrors=[])


# --------------------------------------------------------------------------- resume, retries, cache
def test_dropped_connection_is_resumed_with_range(blob, server, tmp_path):
    server.files[ARCHIVE] = blob
    server.drop(ARCHIVE, after=CUT)
    download_blob(tmp_path / "raw", server, retries=1)
    assert server.ranges(ARCHIVE) == [None, f"bytes={CUT}-"]
    assert (tmp_path / "raw" / "archive.tgz").read_bytes() == blob


def test_interrupted_run_leaves_a_part_that_the_next_run_extends(blob, server, tmp_path, cache):
    server.files[ARCHIVE] = blob
    server.drop(ARCHIVE, after=CUT)
    out = tmp_path / "raw"
    with pytest.raises(DownloadError, match=f"connection closed after {CUT} of {len(blob)} bytes"):
        download_blob(out, server, retries=0)
    assert not out.exists()
    part = cache / f"sha256-{sha256(blob)}.part"
    assert part.read_bytes() == blob[:CUT]

    download_blob(out, server, retries=0)
    assert server.ranges(ARCHIVE) == [None, f"bytes={CUT}-"]
    assert (out / "archive.tgz").read_bytes() == blob
    assert not part.exists()


def test_server_ignoring_range_restarts_from_zero(blob, server, tmp_path, capsys):
    server.files[ARCHIVE] = blob
    server.drop(ARCHIVE, after=CUT)
    server.ignore_range = True
    download_blob(tmp_path / "raw", server, retries=1)
    assert server.ranges(ARCHIVE) == [None, f"bytes={CUT}-"]
    assert (tmp_path / "raw" / "archive.tgz").read_bytes() == blob
    assert "the server ignored Range; downloading from the start" in capsys.readouterr().err


def test_complete_part_answered_416_is_verified_not_refetched(blob, server, tmp_path, cache):
    server.files[ARCHIVE] = blob
    cache.mkdir(parents=True)
    (cache / f"sha256-{sha256(blob)}.part").write_bytes(blob)  # a run killed between download and rename
    download_blob(tmp_path / "raw", server)
    assert server.ranges(ARCHIVE) == [f"bytes={len(blob)}-"]
    assert (tmp_path / "raw" / "archive.tgz").read_bytes() == blob


def test_stale_part_that_does_not_verify_is_downloaded_whole(blob, server, tmp_path, cache, capsys):
    server.files[ARCHIVE] = blob
    cache.mkdir(parents=True)
    (cache / f"sha256-{sha256(blob)}.part").write_bytes(b"\0" * CUT)  # e.g. another source's bytes
    download_blob(tmp_path / "raw", server)
    assert server.ranges(ARCHIVE) == [f"bytes={CUT}-", None]
    assert (tmp_path / "raw" / "archive.tgz").read_bytes() == blob
    assert "the resumed download does not verify" in capsys.readouterr().err


def test_server_errors_are_retried_with_backoff(blob, server, tmp_path):
    server.files[ARCHIVE] = blob
    server.fail(ARCHIVE, times=2)
    download_blob(tmp_path / "raw", server, retries=2)
    assert len(server.ranges(ARCHIVE)) == 3
    assert (tmp_path / "raw" / "archive.tgz").read_bytes() == blob


def test_server_errors_beyond_the_retries_fail_the_source(blob, server, tmp_path):
    server.files[ARCHIVE] = blob
    server.fail(ARCHIVE, times=2)
    with pytest.raises(DownloadError, match=r"HTTP 500 Internal Server Error \(after 2 attempts\)"):
        download_blob(tmp_path / "raw", server, retries=1)
    assert not (tmp_path / "raw").exists()


def test_verified_file_is_reused_from_the_cache_without_network(blob, server, tmp_path, cache, capsys):
    server.files[ARCHIVE] = blob
    download_blob(tmp_path / "first", server)
    url = f"{server.url}/files"
    server.close()

    download_dataset("blob", tmp_path / "second", mirrors=[url])
    assert (tmp_path / "second" / "archive.tgz").read_bytes() == blob
    assert "archive.tgz: from the download cache" in capsys.readouterr().err

    (cache / f"sha256-{sha256(blob)}").write_bytes(b"damaged")  # a cache entry that no longer verifies
    with pytest.raises(DownloadError, match="Connection refused"):
        download_dataset("blob", tmp_path / "third", mirrors=[url])
    assert "which no longer verifies" in capsys.readouterr().err


def test_no_network_fails_fast(blob, tmp_path):
    start = time.monotonic()
    with pytest.raises(DownloadError, match="Connection refused"):
        download_dataset("blob", tmp_path / "raw", mirrors=[closed_port_url() for _ in range(3)])
    assert time.monotonic() - start < 3  # default retries and backoff: refusals are not retried


def test_unknown_dataset_lists_the_known_ones(tmp_path):
    with pytest.raises(DownloadError, match="unknown dataset 'no-such-set'; registered datasets: ") as info:
        download_dataset("no-such-set", tmp_path)
    assert str(info.value).endswith(", ".join(sorted(DATASETS)))


# --------------------------------------------------------------------------- Google Drive
@pytest.fixture
def drive(monkeypatch, server) -> bytes:
    """A dataset whose only file is on (a local stand-in for) Google Drive."""
    data = b"PK\x03\x04" + bytes(range(256)) * 400
    register(monkeypatch, "drive", {"archive": RemoteFile("img.zip", md5(data), scope="file", gdrive_id="FILE-1")})
    monkeypatch.setattr(download_module, "GDRIVE_URL", f"{server.url}{GDRIVE_PATH}")
    return data


@pytest.mark.parametrize("flow, confirm_path", [("form", GDRIVE_FORM_ACTION), ("cookie", GDRIVE_PATH)])
def test_gdrive_confirm_flows(drive, server, tmp_path, flow, confirm_path):
    server.serve_gdrive("FILE-1", drive, flow)
    download_dataset("drive", tmp_path / "raw", backoff=0)
    assert (tmp_path / "raw" / "img.zip").read_bytes() == drive
    first, confirm = server.requests
    assert first.path == f"{GDRIVE_PATH}?export=download&id=FILE-1"
    assert confirm.path.startswith(f"{confirm_path}?") and "confirm=" in confirm.path
    if flow == "cookie":
        assert confirm.cookie and confirm.cookie.startswith("download_warning_")  # the jar kept it


def test_gdrive_quota_page_says_to_download_by_hand(drive, server, tmp_path):
    server.serve_gdrive("FILE-1", drive, "quota")
    with pytest.raises(DownloadError) as info:
        download_dataset("drive", tmp_path / "raw", backoff=0)
    message = str(info.value)
    assert "Too many users have viewed or downloaded this file recently" in message
    assert f"download img.zip by hand from https://drive.google.com/uc?id=FILE-1 and point {ENV_MIRROR}" in message
    assert "datasets.drive.source" in message
    assert not (tmp_path / "raw").exists()
