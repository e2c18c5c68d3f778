"""Downloads: checksum verification, atomic writes, offline instructions (no network used)."""

import dataclasses
import hashlib
import io
import urllib.request
from urllib.error import URLError

import numpy as np
import pytest

import capas.data as data
from capas.data import downloads
from capas.data.downloads import RemoteFile, download, file_digest
from capas.data.registry import REGISTRY
from capas.data.sources import IDX_NAMES
from capas.errors import DataError


def _files_in(folder):
    return sorted(p.name for p in folder.rglob("*") if p.is_file())


def test_download_verifies_sha256_and_md5_of_a_file_url(tmp_path):
    source = tmp_path / "source.bin"
    source.write_bytes(b"capas" * 1000)
    for algorithm in ("sha256", "md5"):
        digest = hashlib.new(algorithm, source.read_bytes()).hexdigest()
        target = tmp_path / "cache" / algorithm / "file.bin"
        download(RemoteFile(source.as_uri(), "file.bin", (algorithm, digest.upper())), target)
        assert target.read_bytes() == source.read_bytes()
        assert file_digest(target, algorithm) == digest
        assert _files_in(target.parent) == ["file.bin"]


def test_corrupted_download_is_rejected_and_nothing_is_left(tmp_path, monkeypatch):
    monkeypatch.setenv("CAPAS_DATA", str(tmp_path / "cache"))
    bad = tmp_path / "bad.gz"
    bad.write_bytes(b"not the file you are looking for" * 100_000)  # 3.2 MB: the progress bar runs too
    served, real_urlopen = [], urllib.request.urlopen

    def serve_bad_bytes(url, timeout):
        served.append((url, timeout))
        return real_urlopen(bad.as_uri())

    monkeypatch.setattr(urllib.request, "urlopen", serve_bad_bytes)
    with pytest.raises(
        DataError,
        match="checksum mismatch for https://ossci-datasets.s3.amazonaws.com/mnist/"
        "train-images-idx3-ubyte.gz: expected md5 f68b3c2dcbeaaa9fbdd348bbdeb94873, got",
    ) as info:
        data.load("mnist")
    assert hashlib.md5(bad.read_bytes()).hexdigest() in str(info.value)
    assert served == [("https://ossci-datasets.s3.amazonaws.com/mnist/train-images-idx3-ubyte.gz", downloads.TIMEOUT_S)]
    assert _files_in(tmp_path / "cache") == []


def test_connection_dropped_mid_download_leaves_no_partial_file(tmp_path, monkeypatch):
    class Dropping(io.BytesIO):
        headers = {"Content-Length": "200000"}

        def read(self, size=-1):
            if self.tell() >= 100_000:
                raise ConnectionResetError("connection reset by peer")
            return super().read(size)

    monkeypatch.setattr(urllib.request, "urlopen", lambda url, timeout: Dropping(b"x" * 200_000))
    with pytest.raises(ConnectionResetError):
        download(RemoteFile("https://example.org/f", "f", ("md5", "0" * 32)), tmp_path / "f")
    assert _files_in(tmp_path) == []


def test_offline_error_lists_each_url_with_its_destination(tmp_path, monkeypatch):
    monkeypatch.setenv("CAPAS_DATA", str(tmp_path))

    def offline(url, timeout):
        raise URLError("Temporary failure in name resolution")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    with pytest.raises(DataError) as info:
        data.load("fashion-mnist")
    message = str(info.value)
    assert "cannot download dataset 'fashion-mnist' (Temporary failure in name resolution)" in message
    for name in IDX_NAMES:
        url = f"http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/{name}"
        assert f"{url} -> {tmp_path / 'fashion-mnist' / name}" in message
    assert "put a ready fashion_mnist.npz" in message and str(tmp_path) in message
    assert _files_in(tmp_path) == []


def test_semeion_is_downloaded_verified_parsed_and_then_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("CAPAS_DATA", str(tmp_path / "cache"))
    rng = np.random.default_rng(0)
    lines = []
    for i in range(50):
        pixels = " ".join(f"{v:.4f}" for v in rng.integers(0, 2, 256))
        lines.append(pixels + " " + " ".join("1" if k == i % 10 else "0" for k in range(10)) + " \n")
    source = tmp_path / "semeion.data"
    source.write_text("".join(lines))
    remote = RemoteFile(source.as_uri(), "semeion.data", ("sha256", hashlib.sha256(source.read_bytes()).hexdigest()))
    monkeypatch.setitem(REGISTRY, "semeion", dataclasses.replace(REGISTRY["semeion"], remotes=(remote,)))
    assert not {i.name: i.local for i in data.available()}["semeion"]

    ds = data.load("semeion", validation=0)
    assert (len(ds.x_train), len(ds.x_test)) == (40, 10) and ds.class_counts("test") == [1] * 10
    assert _files_in(tmp_path / "cache") == ["semeion.data"]
    assert {i.name: i.local for i in data.available()}["semeion"]
    monkeypatch.setattr(urllib.request, "urlopen", lambda url, timeout: pytest.fail("downloaded twice"))
    again = data.load("semeion", validation=0)
    assert np.array_equal(again.x_test.numpy(), ds.x_test.numpy())
    assert set(np.unique(ds.x_train.numpy())) == {0.0, 1.0}


def test_unknown_checksum_algorithm_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match="unknown checksum algorithm 'crc99'"):
        download(RemoteFile((tmp_path / "x").as_uri(), "x", ("crc99", "00")), tmp_path / "x")


def test_data_dir_follows_capas_data(tmp_path, monkeypatch):
    monkeypatch.setenv("CAPAS_DATA", str(tmp_path))
    assert data.data_dir() == tmp_path
    monkeypatch.delenv("CAPAS_DATA")
    assert data.data_dir().name == "capas"
