"""MNIST / Fashion-MNIST: local directories, the Debian package, and downloads from a loopback HTTP server."""

from __future__ import annotations

import dataclasses
import functools
import gzip
import hashlib
import http.server
import threading
from pathlib import Path

import numpy as np
import pytest

from descend.data import load, load_fashion_mnist, load_mnist, vision
from descend.errors import DataError
from tests.data.helpers import FILES, idx_bytes, sha256s, write_fake_set

DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")


@pytest.fixture
def no_system_dirs(monkeypatch, tmp_path):
    """Hide /usr/share/datasets so the search falls through to the cache and the download."""
    monkeypatch.setattr(
        vision, "FASHION_MNIST", dataclasses.replace(vision.FASHION_MNIST, system_dirs=(str(tmp_path / "no-such"),))
    )


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):
        pass


@pytest.fixture
def server(tmp_path):
    """An HTTP server on 127.0.0.1 serving tmp_path/www; yields (base_url, directory, request log)."""
    root = tmp_path / "www"
    root.mkdir()
    requests: list[str] = []

    class Handler(_QuietHandler):
        def do_GET(self):
            requests.append(self.path)
            super().do_GET()

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(root)))
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/", root, requests
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


def check_fake(splits, arrays, *, flatten=False):
    train, test = splits
    images = arrays["train-images-idx3-ubyte"]
    expected_shape = (len(images), 784) if flatten else (len(images), 1, 28, 28)
    assert train.x.shape == expected_shape and train.x.dtype == np.float32
    np.testing.assert_array_equal(train.x.reshape(images.shape), images.astype(np.float32) / 255)
    np.testing.assert_array_equal(train.y, arrays["train-labels-idx1-ubyte"])
    np.testing.assert_array_equal(test.y, arrays["t10k-labels-idx1-ubyte"])
    assert 0.0 <= train.x.min() and train.x.max() <= 1.0 and train.num_classes == 10


# -- local files ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("gz", [True, False])
@pytest.mark.parametrize("flatten", [False, True])
def test_data_dir_gzip_or_raw(tmp_path, gz, flatten):
    arrays = write_fake_set(tmp_path / "d", gz=gz)
    splits = load_fashion_mnist(data_dir=tmp_path / "d", download=False, flatten=flatten)
    check_fake(splits, arrays, flatten=flatten)
    assert splits.train.classes[0] == "T-shirt/top" and splits.train.name == "fashion_mnist"


def test_explicit_data_dir_is_strict(tmp_path):
    write_fake_set(tmp_path / "d")
    (tmp_path / "d" / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataError, match=r"data_dir .*d lacks t10k-labels-idx1-ubyte.gz \(expected the files"):
        load_fashion_mnist(data_dir=tmp_path / "d")


def test_descend_data_env(tmp_path, monkeypatch):
    arrays = write_fake_set(tmp_path / "root" / "mnist", seed=4)
    monkeypatch.setenv("DESCEND_DATA", str(tmp_path / "root"))
    check_fake(load("mnist", download=False), arrays)


def test_normalize_standardizes_with_train_stats(tmp_path):
    write_fake_set(tmp_path / "d", n_train=50, n_test=10)
    splits = load_mnist(data_dir=tmp_path / "d", normalize=True)
    raw = load_mnist(data_dir=tmp_path / "d")
    assert abs(float(splits.train.x.mean())) < 1e-5 and abs(float(splits.train.x.std()) - 1) < 1e-4
    mean, std = raw.train.x.mean(dtype=np.float64), raw.train.x.std(dtype=np.float64)
    np.testing.assert_allclose(splits.test.x, (raw.test.x - mean) / std, rtol=1e-5, atol=1e-5)


def test_missing_files_say_where_they_looked(tmp_path, monkeypatch, no_system_dirs):
    monkeypatch.setenv("DESCEND_DATA", str(tmp_path / "data"))
    (tmp_path / "data" / "fashion-mnist").mkdir(parents=True)
    with pytest.raises(DataError) as info:
        load("fashion_mnist", download=False)
    msg = str(info.value)
    assert "IDX files not found; looked in:" in msg
    assert (
        f"{tmp_path / 'data' / 'fashion-mnist'} ($DESCEND_DATA/fashion-mnist: lacks train-images-idx3-ubyte.gz" in msg
    )
    assert f"{tmp_path / 'no-such'} (system directory: does not exist)" in msg
    assert f"{tmp_path / 'cache' / 'fashion-mnist'} (download cache: does not exist)" in msg
    assert "download=False" in msg and "make data" in msg


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: (d / "train-images-idx3-ubyte.gz").write_bytes(b"\x1f\x8b\x08\x00junk"), r"corrupt or truncated"),
        (
            lambda d: (d / "train-labels-idx1-ubyte.gz").write_bytes(
                gzip.compress(b"\x00\x00\x08\x01\x00\x00\x00\x05")
            ),
            r"train-labels-idx1-ubyte.gz is truncated",
        ),
        (
            lambda d: (d / "t10k-images-idx3-ubyte.gz").write_bytes(
                gzip.compress(idx_bytes(np.zeros((8, 27, 27), np.uint8), 0x08, "u1"))
            ),
            r"must hold uint8 images of shape \(n, 28, 28\), got uint8 of shape \(8, 27, 27\)",
        ),
        (
            lambda d: (d / "t10k-labels-idx1-ubyte.gz").write_bytes(
                gzip.compress(idx_bytes(np.zeros(7, np.uint8), 0x08, "u1"))
            ),
            r"t10k-images-idx3-ubyte.gz has 8 images but .*t10k-labels-idx1-ubyte.gz has 7 labels",
        ),
        (
            lambda d: (d / "train-labels-idx1-ubyte.gz").write_bytes(
                gzip.compress(idx_bytes(np.full(20, 10, np.uint8), 0x08, "u1"))
            ),
            r"labels must be in \[0, 10\)",
        ),
    ],
    ids=["corrupt-gzip", "truncated-labels", "wrong-image-size", "count-mismatch", "label-out-of-range"],
)
def test_corrupt_or_inconsistent_local_files(tmp_path, mutate, message):
    write_fake_set(tmp_path / "d")
    mutate(tmp_path / "d")
    with pytest.raises(DataError, match=message):
        load_mnist(data_dir=tmp_path / "d")


def test_verify_rejects_files_that_are_not_the_official_ones(tmp_path):
    write_fake_set(tmp_path / "d")
    with pytest.raises(
        DataError, match=r"train-images-idx3-ubyte.gz does not match the official data: SHA-256 of the "
    ):
        load_fashion_mnist(data_dir=tmp_path / "d", verify=True)
    with pytest.raises(DataError, match=r"expected 440fcabf.*no checksum of the decompressed file is known for mnist"):
        load_mnist(data_dir=tmp_path / "d", verify=True)


def test_verify_accepts_matching_checksums(tmp_path):
    write_fake_set(tmp_path / "d")
    sums = sha256s(tmp_path / "d")
    assert len(load_mnist(data_dir=tmp_path / "d", verify=True, checksums=sums).train) == 20


# -- downloads -------------------------------------------------------------------------------------------------------


def test_download_from_loopback_server(tmp_path, server, no_system_dirs):
    base, root, requests = server
    arrays = write_fake_set(root, seed=2)
    sums = sha256s(root)
    splits = load_fashion_mnist(base_url=base, checksums=sums)
    check_fake(splits, arrays)
    assert sorted(requests) == sorted(f"/{f}.gz" for f in FILES)
    cache = tmp_path / "cache" / "fashion-mnist"
    assert sorted(p.name for p in cache.iterdir()) == sorted(f"{f}.gz" for f in FILES)  # no temp files left
    assert all(p.stat().st_mode & 0o777 == 0o644 for p in cache.iterdir())  # not mkstemp's private 0600
    # The second load uses the cache: no new requests, even with downloading allowed.
    check_fake(load_fashion_mnist(base_url=base, checksums=sums), arrays)
    assert len(requests) == 4
    check_fake(load_fashion_mnist(download=False), arrays)


def test_checksum_mismatch_is_an_error_and_leaves_nothing(tmp_path, server):
    base, root, _ = server
    write_fake_set(root)
    sums = sha256s(root)
    sums["train-labels-idx1-ubyte.gz"] = hashlib.sha256(b"something else").hexdigest()
    with pytest.raises(DataError) as info:
        load_mnist(base_url=base, checksums=sums)
    msg = str(info.value)
    assert (
        f"downloaded {base}train-labels-idx1-ubyte.gz but its SHA-256 is {sha256s(root)['train-labels-idx1-ubyte.gz']}"
        in msg
    )
    assert f"expected {sums['train-labels-idx1-ubyte.gz']}" in msg and "discarded" in msg
    cache = tmp_path / "cache" / "mnist"
    leftovers = sorted(p.name for p in cache.iterdir())
    assert "train-labels-idx1-ubyte.gz" not in leftovers
    assert not [n for n in leftovers if n.endswith(".part")]
    assert leftovers == ["train-images-idx3-ubyte.gz"]  # only the verified file before it


def test_official_checksums_are_used_by_default(tmp_path, server):
    base, root, _ = server
    write_fake_set(root)
    with pytest.raises(DataError, match=r"expected 440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609"):
        load_mnist(base_url=base)
    assert not list((tmp_path / "cache" / "mnist").iterdir())


def test_mirror_fallback_and_http_errors(tmp_path, server):
    base, root, requests = server
    arrays = write_fake_set(root / "good")
    sums = sha256s(root / "good")
    check_fake(load_mnist(base_url=[base + "missing", base + "good"], checksums=sums), arrays)
    assert requests[0] == "/missing/train-images-idx3-ubyte.gz"
    with pytest.raises(DataError, match=r"could not download .*/missing/train-images-idx3-ubyte.gz: HTTP 404"):
        load_mnist(base_url=base + "missing", checksums=sums, cache_dir=tmp_path / "other")


def test_unreachable_server(tmp_path):
    with pytest.raises(DataError, match=r"could not download http://127.0.0.1:9/train-images-idx3-ubyte.gz"):
        load_mnist(base_url="http://127.0.0.1:9/", checksums={f"{f}.gz": "0" * 64 for f in FILES})
    assert not [p for p in (tmp_path / "cache").rglob("*") if p.is_file()]


def test_official_sources_are_pinned():
    assert vision.FASHION_MNIST.base_urls == ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",)
    assert vision.MNIST.base_urls[0] == "https://ossci-datasets.s3.amazonaws.com/mnist/"
    for source in (vision.FASHION_MNIST, vision.MNIST):
        assert sorted(source.sha256) == sorted(f"{f}.gz" for f in FILES)
        assert all(len(h) == 64 and int(h, 16) >= 0 for h in source.sha256.values())


# -- the Debian package ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def debian_fashion():
    if not all((DEBIAN_DIR / f"{f}.gz").is_file() for f in FILES):
        pytest.skip(f"{DEBIAN_DIR} not installed (apt-get install dataset-fashion-mnist, or `make data`)")
    return load_fashion_mnist(download=False, verify=True)


def test_debian_fashion_mnist(debian_fashion, monkeypatch):
    train, test = debian_fashion
    assert train.x.shape == (60000, 1, 28, 28) and test.x.shape == (10000, 1, 28, 28)
    assert train.x.dtype == np.float32 and 0.0 == train.x.min() and train.x.max() == 1.0
    assert np.bincount(train.y).tolist() == [6000] * 10 and np.bincount(test.y).tolist() == [1000] * 10
    assert train.classes[9] == "Ankle boot"


def test_debian_files_match_the_recorded_payload_checksums():
    if not DEBIAN_DIR.is_dir():
        pytest.skip(f"{DEBIAN_DIR} not installed")
    for stem in FILES:
        payload = gzip.decompress((DEBIAN_DIR / f"{stem}.gz").read_bytes())
        assert hashlib.sha256(payload).hexdigest() == vision.FASHION_MNIST.payload_sha256[stem]
