"""`cvlab data fetch` for CIFAR-10 never loses a file it did not create.

A local HTTP server (conftest's http_folder) stands in for the download site and serves a
tiny archive in the official layout; the expected md5 is set to that archive's.
Offline means a URL on a closed port. In every case the user's own files end up either
where they were or set aside under `<name>.old`, byte for byte.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
from cifar10_fixtures import Tiny, write_batches, write_official_targz

from cvlab.data import cifar10
from cvlab.errors import UserError

OFFLINE_URL = "http://127.0.0.1:9/cifar-10-python.tar.gz"


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("CVLAB_CACHE", str(tmp_path / "cache-home"))
    monkeypatch.setenv("CVLAB_DATA", str(tmp_path / "data-home"))
    monkeypatch.setenv(cifar10.URL_ENV, OFFLINE_URL)


@pytest.fixture
def server(http_folder, monkeypatch):
    """The download site: fetch's URL points at the local server's folder (yielded)."""
    www, url = http_folder
    monkeypatch.setenv(cifar10.URL_ENV, f"{url}/{cifar10.ARCHIVE_NAME}")
    return www


def md5_of(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def serve_official(served: Path, monkeypatch, seed: int = 0) -> tuple[Tiny, bytes]:
    """Put an "official" archive on the server and make its md5 the expected one."""
    tiny = Tiny(seed)
    archive = write_official_targz(served, tiny)
    monkeypatch.setattr(cifar10, "MD5", md5_of(archive))
    return tiny, archive.read_bytes()


def users_archive(root: Path) -> bytes:
    """The user's own cifar-10-python.tar.gz: a real CIFAR-style archive, not the official
    bytes (another tiny set)."""
    return write_official_targz(root, Tiny(seed=7)).read_bytes()


def listing(folder: Path) -> dict[str, bytes | None]:
    """Every path under `folder` with its bytes (None for folders)."""
    return {str(p.relative_to(folder)): (p.read_bytes() if p.is_file() else None)
            for p in sorted(folder.rglob("*"))}


def test_offline_fetch_keeps_the_users_archive_untouched(tmp_path):
    root = tmp_path / "root"
    mine = users_archive(root)
    before = listing(root)
    with pytest.raises(UserError) as err:
        cifar10.fetch(root, announce=lambda line: None)
    message = str(err.value)
    assert "\n" not in message and "could not download CIFAR-10" in message
    assert "left untouched" in message and "by hand" not in message
    assert listing(root) == before  # nothing deleted, nothing left behind
    assert (root / cifar10.ARCHIVE_NAME).read_bytes() == mine
    # and cvlab still reads the user's copy
    data = cifar10.load_arrays(root, announce=lambda line: None)
    assert np.array_equal(data.X_test, Tiny(seed=7).X_test)


def test_fetch_sets_the_users_archive_aside_and_says_so(tmp_path, server, monkeypatch):
    tiny, official = serve_official(server, monkeypatch)
    root = tmp_path / "root"
    mine = users_archive(root)
    (root / f"{cifar10.ARCHIVE_NAME}.old").write_bytes(b"an older set-aside copy")
    lines: list[str] = []
    path = cifar10.fetch(root, announce=lines.append)
    assert path == root / cifar10.BATCH_FOLDER
    aside = root / f"{cifar10.ARCHIVE_NAME}.old2"
    assert aside.read_bytes() == mine  # the user's file, byte for byte
    assert (root / f"{cifar10.ARCHIVE_NAME}.old").read_bytes() == b"an older set-aside copy"
    said = [line for line in lines if "set aside" in line]
    assert len(said) == 1 and aside.name in said[0] and "not the official archive" in said[0]
    assert (root / cifar10.ARCHIVE_NAME).read_bytes() == official
    assert not list(root.glob(".cvlab-fetch-*"))
    data = cifar10.load_arrays(root, announce=lambda line: None)
    assert np.array_equal(data.X_train, tiny.X_train)


def test_download_failing_its_checksum_keeps_everything(tmp_path, server, monkeypatch):
    serve_official(server, monkeypatch)
    monkeypatch.setattr(cifar10, "MD5", "0" * 32)  # the served file is not the expected one
    root = tmp_path / "root"
    users_archive(root)
    before = listing(root)
    with pytest.raises(UserError, match="could not download CIFAR-10.*left untouched"):
        cifar10.fetch(root, announce=lambda line: None)
    assert listing(root) == before


def test_fresh_fetch_downloads_into_a_new_root(tmp_path, server, monkeypatch):
    tiny, official = serve_official(server, monkeypatch)
    root = tmp_path / "new" / "root"
    lines: list[str] = []
    cifar10.fetch(root, announce=lines.append)
    assert not any("set aside" in line for line in lines)
    assert {p.name for p in root.iterdir()} == {cifar10.ARCHIVE_NAME, cifar10.BATCH_FOLDER}
    assert (root / cifar10.ARCHIVE_NAME).read_bytes() == official
    data = cifar10.load_arrays(root, announce=lambda line: None)
    assert np.array_equal(data.y_test, tiny.y_test)


def test_official_archive_present_is_extracted_beside_an_incomplete_folder(tmp_path,
                                                                           monkeypatch):
    root = tmp_path / "root"
    tiny = Tiny()
    archive = write_official_targz(root, tiny)
    monkeypatch.setattr(cifar10, "MD5", md5_of(archive))
    official = archive.read_bytes()
    partial = write_batches(tmp_path / "partial", Tiny(seed=3))
    (root / cifar10.BATCH_FOLDER).mkdir()
    own_test_batch = (partial / "test_batch").read_bytes()
    (root / cifar10.BATCH_FOLDER / "test_batch").write_bytes(own_test_batch)  # no data_batch_1
    lines: list[str] = []
    cifar10.fetch(root, announce=lines.append)  # offline: the archive present is enough
    assert archive.read_bytes() == official
    aside = root / f"{cifar10.BATCH_FOLDER}.old"
    assert (aside / "test_batch").read_bytes() == own_test_batch
    assert any("set aside as" in line and aside.name in line for line in lines)
    data = cifar10.load_arrays(root, announce=lambda line: None)
    assert data.info["format"] == "batches" and np.array_equal(data.X_test, tiny.X_test)


def test_fetch_with_a_copy_present_writes_nothing(tmp_path):
    root = tmp_path / "root"
    write_batches(root / cifar10.BATCH_FOLDER, Tiny())
    before = listing(root)
    lines: list[str] = []
    cifar10.fetch(root, announce=lines.append)
    assert "already present" in lines[0]
    assert listing(root) == before


def test_cli_fetch_offline_with_the_users_archive(cvlab, tmp_path):
    root = tmp_path / "root"
    mine = users_archive(root)
    result = cvlab("data", "fetch", "dataset=cifar10", f"dataset.root={root}",
                   f"outputs_root={tmp_path / 'outputs'}")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr + result.stdout
    error_lines = result.stderr.strip().splitlines()
    assert len(error_lines) == 1 and "left untouched" in error_lines[0]
    assert (root / cifar10.ARCHIVE_NAME).read_bytes() == mine
    assert sorted(p.name for p in root.iterdir()) == [cifar10.ARCHIVE_NAME]


def test_fetch_repairs_a_batch_folder_with_a_missing_file(tmp_path, server, monkeypatch):
    tiny, _ = serve_official(server, monkeypatch)
    root = tmp_path / "root"
    own = write_batches(root / cifar10.BATCH_FOLDER, Tiny(seed=5))
    (own / "data_batch_5").unlink()
    with pytest.raises(UserError, match="data_batch_5 is missing.*cvlab data fetch"):
        cifar10.load_arrays(root, announce=lambda line: None)
    kept = listing(own)
    lines: list[str] = []
    cifar10.fetch(root, announce=lines.append)
    assert "lacks data_batch_5" in lines[0]
    assert listing(root / f"{cifar10.BATCH_FOLDER}.old") == kept
    assert any("is incomplete (no data_batch_5)" in line for line in lines)
    data = cifar10.load_arrays(root, announce=lambda line: None)
    assert np.array_equal(data.X_train, tiny.X_train)
