"""Archives are read in memory and every hostile member is refused by name, with nothing written."""
import io
import tarfile
from pathlib import Path

import pytest

import miniatures
from genlab.data.archives import (ArchiveError, CorruptArchiveError, SafeZip, UnsafeArchiveError, iter_members,
                                  iter_tar, normalise_member_name)


def _store(tmp_path: Path, name: str, data: bytes) -> Path:
    """Write the archive into its own raw directory, as the download stage would."""
    raw = tmp_path / "raw" / "lfw"
    raw.mkdir(parents=True, exist_ok=True)
    path = raw / name
    path.write_bytes(data)
    return path


def _files_under(root: Path) -> set[Path]:
    return {p for p in root.rglob("*")}


def _refused(path: Path, member: str, error: type[ArchiveError], **limits: int) -> str:
    """Read `path` from inside its directory; assert `error` names archive and member, and nothing appeared."""
    before = _files_under(path.parents[2])
    with pytest.raises(error) as caught:
        list(iter_members(path, **limits))
    message = str(caught.value)
    assert str(path) in message and repr(member) in message
    assert _files_under(path.parents[2]) == before
    return message


@pytest.mark.parametrize("compression", ["gz", "bz2", "xz", ""])
def test_tar_any_compression_yields_regular_files_normalised(tmp_path, compression):
    data = miniatures.tar_archive([("./lfw/A/A_0001.jpg", b"one"), ("lfw//B/./B_0001.jpg", b"two")], compression)
    path = _store(tmp_path, f"lfw.tar.{compression}", data)
    assert list(iter_members(path)) == [("lfw/A/A_0001.jpg", b"one"), ("lfw/B/B_0001.jpg", b"two")]


def test_lfw_miniature_skips_directories(tmp_path):
    path = _store(tmp_path, "lfw.tgz", miniatures.lfw_archive(2, 2, side=32))
    names = [name for name, _ in iter_members(path)]
    with tarfile.open(fileobj=io.BytesIO(path.read_bytes())) as tar:
        assert names == [m.name for m in tar.getmembers() if m.isfile()]
    assert names[0] == "lfw/Aaron_Eckhart/Aaron_Eckhart_0001.jpg"


@pytest.mark.parametrize("kind", sorted(miniatures.HOSTILE_TAR_MEMBERS))
def test_hostile_tar_member_refused(tmp_path, kind, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a relative escape would land here or above
    path = _store(tmp_path, "lfw.tgz", miniatures.hostile_tgz(kind))
    message = _refused(path, miniatures.HOSTILE_TAR_MEMBERS[kind], UnsafeArchiveError)
    assert "refusing member" in message
    assert not (tmp_path.parent / "evil").exists() and not (tmp_path / "evil").exists()


@pytest.mark.parametrize("kind", ["traversal", "absolute", "backslash", "symlink", "bomb"])
def test_hostile_zip_member_refused(tmp_path, kind):
    path = _store(tmp_path, "img_align_celeba.zip", miniatures.hostile_zip(kind))
    _refused(path, miniatures.HOSTILE_ZIP_MEMBERS[kind], UnsafeArchiveError)


def test_zip_refuses_before_reading_anything(tmp_path):
    path = _store(tmp_path, "img_align_celeba.zip", miniatures.hostile_zip("bomb"))
    with pytest.raises(UnsafeArchiveError):
        SafeZip(path)  # the central directory alone is enough to refuse


def test_zip_member_longer_than_declared_refused(tmp_path):
    path = _store(tmp_path, "img_align_celeba.zip", miniatures.hostile_zip("lying"))
    message = _refused(path, miniatures.HOSTILE_ZIP_MEMBERS["lying"], ArchiveError)
    assert "re-run the download stage" in message


def test_total_declared_size_limit(tmp_path):
    path = _store(tmp_path, "lfw.tgz", miniatures.tar_archive([(f"lfw/A/A_{i:04d}.jpg", bytes(600)) for i in range(4)]))
    message = _refused(path, "lfw/A/A_0002.jpg", UnsafeArchiveError, max_total_bytes=1500)
    assert "archive limit of 1500" in message
    with pytest.raises(UnsafeArchiveError, match="per-member limit of 500"):
        list(iter_members(path, max_member_bytes=500))


def test_duplicate_member_refused(tmp_path):
    path = _store(tmp_path, "lfw.tgz", miniatures.tar_archive([("lfw/A/x.jpg", b"1"), ("./lfw/A/x.jpg", b"2")]))
    assert "duplicate" in _refused(path, "./lfw/A/x.jpg", UnsafeArchiveError)


@pytest.mark.parametrize("name, data", [
    ("lfw.tgz", miniatures.truncated_tgz()),
    ("lfw.tgz", b"\x1f\x8b" + bytes(100)),
    ("lfw.tgz", b"not an archive at all" * 40),
    ("img_align_celeba.zip", miniatures.celeba_files(3)["img_align_celeba.zip"][:400]),
])
def test_corrupt_archive_says_download_again(tmp_path, name, data):
    path = _store(tmp_path, name, data)
    with pytest.raises(CorruptArchiveError) as caught:
        list(iter_members(path))
    message = str(caught.value)
    assert str(path) in message and f"delete {path}" in message and "`dvc repro download@lfw`" in message


def test_zip_crc_error_names_member(tmp_path):
    data = bytearray(miniatures.zip_archive([("img_align_celeba/000001.jpg", bytes(range(256)) * 8)]))
    data[60] ^= 0xFF  # inside the deflated data of the only member
    path = _store(tmp_path, "img_align_celeba.zip", bytes(data))
    with pytest.raises(CorruptArchiveError, match=r"member 'img_align_celeba/000001\.jpg'"):
        list(iter_members(path))


def test_gzip_trailer_is_checked(tmp_path):
    data = bytearray(miniatures.tar_archive([("lfw/A/A_0001.jpg", b"payload")]))
    data[-8] ^= 0xFF  # the gzip CRC32: the tar itself still parses
    path = _store(tmp_path, "lfw.tgz", bytes(data))
    with pytest.raises(CorruptArchiveError, match="CRC"):
        list(iter_tar(path))


def test_missing_archive(tmp_path):
    with pytest.raises(ArchiveError, match=r"archive missing; run the download stage"):
        list(iter_members(tmp_path / "lfw.tgz"))


@pytest.mark.parametrize("name, expected", [("a/./b//c.jpg", "a/b/c.jpg"), ("./x", "x"), ("a\\b.jpg", "a/b.jpg")])
def test_normalise_member_name(name, expected):
    assert normalise_member_name(Path("x.tgz"), name) == expected


@pytest.mark.parametrize("name", ["", "/abs", "\\abs", "C:/x", "a/../../b", "..", "a/\0b", "./"])
def test_normalise_member_name_refuses(name):
    with pytest.raises(UnsafeArchiveError, match="x.tgz"):
        normalise_member_name(Path("x.tgz"), name)
