"""MNIST and Fashion-MNIST from their IDX files.

The four files (``train-images-idx3-ubyte.gz``, ``train-labels-idx1-ubyte.gz``,
``t10k-images-idx3-ubyte.gz``, ``t10k-labels-idx1-ubyte.gz``, each also accepted
uncompressed) are looked for, in order, in

1. ``data_dir`` when given (and only there: a directory you name must hold the files),
2. ``$DESCEND_DATA/fashion-mnist`` (or ``$DESCEND_DATA/mnist``),
3. the system directories (Debian/Ubuntu package ``dataset-fashion-mnist`` installs
   ``/usr/share/datasets/fashion-mnist``; ``make data`` installs it),
4. the cache ``$DESCEND_CACHE/<name>`` (default ``~/.cache/descend``) from an earlier download,

and otherwise downloaded (``download=True``) from the official source into the
cache, each file checked against its SHA-256 before it is kept.

Checksums. MNIST: the SHA-256 sums of the four ``.gz`` files as served by the
PyTorch mirror (https://ossci-datasets.s3.amazonaws.com/mnist/) and Google's
CVDF mirror, which serve identical files (the same sums are used by
TensorFlow Datasets and torchvision's mirrors). Fashion-MNIST: the official page
publishes only MD5 sums; the SHA-256 sums below are the ones TensorFlow Datasets
and other pinned downloaders record for the files on the official S3 bucket,
whose sizes (26,421,880 / 29,515 / 4,422,102 / 5,148 bytes) and MD5s match the
official README. Debian's ``dataset-fashion-mnist`` ships the same deflate
streams with the gzip header normalised by strip-nondeterminism (no stored
file name, fixed mtime), so its ``.gz`` files are 23-24 bytes shorter and hash
differently; their *decompressed* contents are recorded in ``PAYLOAD_SHA256``
(computed from dataset-fashion-mnist 0.0~git20200523.55506a9-1) and
``verify=True`` accepts a local file when either sum matches.
"""

from __future__ import annotations

import gzip
import hashlib
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from descend.data.dataset import Dataset, Splits, standardize
from descend.data.download import DATA_ENV, sha256_file
from descend.data.download import cache_dir as _cache_dir
from descend.data.download import download as _fetch
from descend.data.idx import read_idx
from descend.errors import DataError

#: role -> file name without ``.gz``
FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}


@dataclass(frozen=True)
class ImageSource:
    """Where one IDX image data set lives and how to verify it."""

    name: str  # "fashion_mnist"
    dirname: str  # subdirectory under $DESCEND_DATA and the cache
    system_dirs: tuple[str, ...]
    base_urls: tuple[str, ...]  # tried in order
    sha256: Mapping[str, str]  # "<file>.gz" -> SHA-256 of the compressed file
    payload_sha256: Mapping[str, str]  # "<file>" -> SHA-256 of the decompressed IDX bytes ({} if unknown)
    classes: tuple[str, ...]


FASHION_MNIST = ImageSource(
    name="fashion_mnist",
    dirname="fashion-mnist",
    system_dirs=("/usr/share/datasets/fashion-mnist",),
    base_urls=("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
    sha256={
        "train-images-idx3-ubyte.gz": "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
        "train-labels-idx1-ubyte.gz": "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
        "t10k-images-idx3-ubyte.gz": "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
        "t10k-labels-idx1-ubyte.gz": "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
    },
    # Computed from Debian's dataset-fashion-mnist (see the module docstring).
    payload_sha256={
        "train-images-idx3-ubyte": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
        "train-labels-idx1-ubyte": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
        "t10k-images-idx3-ubyte": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
        "t10k-labels-idx1-ubyte": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
    },
    classes=("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"),
)

MNIST = ImageSource(
    name="mnist",
    dirname="mnist",
    system_dirs=(),
    base_urls=("https://ossci-datasets.s3.amazonaws.com/mnist/", "https://storage.googleapis.com/cvdf-datasets/mnist/"),
    sha256={
        "train-images-idx3-ubyte.gz": "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
        "train-labels-idx1-ubyte.gz": "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
        "t10k-images-idx3-ubyte.gz": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
        "t10k-labels-idx1-ubyte.gz": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
    },
    payload_sha256={},
    classes=tuple(str(d) for d in range(10)),
)


def load_fashion_mnist(
    *,
    data_dir: str | os.PathLike | None = None,
    download: bool = True,
    flatten: bool = False,
    normalize: bool = False,
    verify: bool = False,
    cache_dir: str | os.PathLike | None = None,
    base_url: str | Sequence[str] | None = None,
    checksums: Mapping[str, str] | None = None,
) -> Splits:
    """Fashion-MNIST: 60,000 train / 10,000 test 28x28 grayscale images of 10 clothing classes.

    ``x`` is float32 in [0, 1] of shape ``(n, 1, 28, 28)``, or ``(n, 784)`` with
    ``flatten=True``; ``normalize=True`` standardizes both splits with the
    training split's mean and standard deviation. ``verify=True`` also checks
    local files against the known checksums (downloads are always checked).
    ``base_url``/``checksums`` override the download source (mirrors, tests).
    """
    return load_idx_dataset(
        FASHION_MNIST,
        data_dir=data_dir,
        download=download,
        flatten=flatten,
        normalize=normalize,
        verify=verify,
        cache_dir=cache_dir,
        base_url=base_url,
        checksums=checksums,
    )


def load_mnist(
    *,
    data_dir: str | os.PathLike | None = None,
    download: bool = True,
    flatten: bool = False,
    normalize: bool = False,
    verify: bool = False,
    cache_dir: str | os.PathLike | None = None,
    base_url: str | Sequence[str] | None = None,
    checksums: Mapping[str, str] | None = None,
) -> Splits:
    """MNIST handwritten digits: 60,000 train / 10,000 test 28x28 images; same options as :func:`load_fashion_mnist`."""
    return load_idx_dataset(
        MNIST,
        data_dir=data_dir,
        download=download,
        flatten=flatten,
        normalize=normalize,
        verify=verify,
        cache_dir=cache_dir,
        base_url=base_url,
        checksums=checksums,
    )


def load_idx_dataset(
    source: ImageSource,
    *,
    data_dir: str | os.PathLike | None = None,
    download: bool = True,
    flatten: bool = False,
    normalize: bool = False,
    verify: bool = False,
    cache_dir: str | os.PathLike | None = None,
    base_url: str | Sequence[str] | None = None,
    checksums: Mapping[str, str] | None = None,
) -> Splits:
    """Locate (or download), read and validate the four IDX files of ``source``."""
    for flag, value in (("download", download), ("flatten", flatten), ("normalize", normalize), ("verify", verify)):
        if not isinstance(value, bool):
            raise DataError(f"{source.name}: {flag} must be a bool, got {value!r}")
    sums = dict(source.sha256 if checksums is None else checksums)
    paths = locate(source, data_dir=data_dir, download=download, cache=cache_dir, base_url=base_url, checksums=sums)
    if verify:
        for path in paths.values():
            _verify_local(source, path, sums)
    arrays = {role: read_idx(path) for role, path in paths.items()}
    train = _to_dataset(source, arrays["train_images"], arrays["train_labels"], paths, "train", flatten)
    test = _to_dataset(source, arrays["test_images"], arrays["test_labels"], paths, "test", flatten)
    splits = Splits(train, test)
    return standardize(splits) if normalize else splits


def locate(
    source: ImageSource,
    *,
    data_dir: str | os.PathLike | None = None,
    download: bool = True,
    cache: str | os.PathLike | None = None,
    base_url: str | Sequence[str] | None = None,
    checksums: Mapping[str, str] | None = None,
) -> dict[str, Path]:
    """Paths of the four files (role -> path), downloading them into the cache when allowed and needed."""
    if data_dir is not None:
        directory = Path(data_dir).expanduser()
        found, missing = _find_in(directory)
        if missing:
            raise DataError(
                f"{source.name}: data_dir {directory} lacks {', '.join(missing)} "
                f"(expected the files {', '.join(f + '.gz' for f in FILES.values())}, gzip-compressed or not)"
            )
        return found

    searched: list[str] = []
    candidates: list[tuple[Path, str]] = []
    env = os.environ.get(DATA_ENV)
    if env:
        for sub in dict.fromkeys((source.dirname, source.name)):
            candidates.append((Path(env).expanduser() / sub, f"${DATA_ENV}/{sub}"))
    else:
        searched.append(f"${DATA_ENV}/{source.dirname} (${DATA_ENV} is not set)")
    candidates += [(Path(d), "system directory") for d in source.system_dirs]
    cache_sub = _cache_dir(cache) / source.dirname
    candidates.append((cache_sub, "download cache"))
    for directory, label in candidates:
        found, missing = _find_in(directory)
        if not missing:
            return found
        state = "does not exist" if not directory.is_dir() else f"lacks {', '.join(missing)}"
        searched.append(f"{directory} ({label}: {state})")

    if not download:
        raise DataError(
            f"{source.name}: IDX files not found; looked in: {'; '.join(searched)}. Downloading is off "
            f"(download=False): pass data_dir=..., set ${DATA_ENV}, "
            + ("run `make data` (installs dataset-fashion-mnist), " if source.system_dirs else "")
            + "or allow download=True"
        )
    urls = _base_urls(source, base_url)
    sums = dict(source.sha256 if checksums is None else checksums)
    found = {}
    for role, stem in FILES.items():
        local = cache_sub / f"{stem}.gz"
        if not local.is_file():
            _download_any(source, urls, f"{stem}.gz", local, sums, searched)
        found[role] = local
    return found


def _find_in(directory: Path) -> tuple[dict[str, Path], list[str]]:
    found: dict[str, Path] = {}
    missing: list[str] = []
    for role, stem in FILES.items():
        dotted = stem.replace("-idx", ".idx")  # "train-images.idx3-ubyte" (Kaggle's spelling)
        for name in (f"{stem}.gz", stem, f"{dotted}.gz", dotted):
            if (directory / name).is_file():
                found[role] = directory / name
                break
        else:
            missing.append(f"{stem}.gz")
    return found, missing


def _base_urls(source: ImageSource, base_url: str | Sequence[str] | None) -> tuple[str, ...]:
    if base_url is None:
        urls: tuple[str, ...] = source.base_urls
    elif isinstance(base_url, str):
        urls = (base_url,)
    else:
        urls = tuple(base_url)
    if not urls or not all(isinstance(u, str) and u for u in urls):
        raise DataError(f"{source.name}: base_url must be a URL string or a sequence of them, got {base_url!r}")
    return tuple(u if u.endswith("/") else u + "/" for u in urls)


def _download_any(
    source: ImageSource, urls: tuple[str, ...], filename: str, dest: Path, sums: Mapping[str, str], searched: list[str]
) -> None:
    expected = sums.get(filename)
    if expected is None:
        raise DataError(f"{source.name}: no SHA-256 known for {filename}; checksums has {sorted(sums)}")
    failures = []
    for base in urls:
        try:
            _fetch(base + filename, dest, expected)
            return
        except DataError as exc:
            failures.append(str(exc))
    raise DataError(
        f"{source.name}: {filename} not found locally (looked in: {'; '.join(searched)}) and the download failed: "
        + " | ".join(failures)
    )


def _verify_local(source: ImageSource, path: Path, sums: Mapping[str, str]) -> None:
    """Accept ``path`` if its SHA-256 is the official ``.gz`` one or its decompressed bytes hash to the payload."""
    stem = path.name.removesuffix(".gz").replace(".idx", "-idx")
    file_sum, payload_sum = sums.get(f"{stem}.gz"), source.payload_sha256.get(stem)
    got = sha256_file(path)
    if got == file_sum:
        return
    if payload_sum is None:
        raise DataError(
            f"{source.name}: {path} does not match the official data: SHA-256 {got}, expected {file_sum} "
            f"(the official {stem}.gz; no checksum of the decompressed file is known for {source.name})"
        )
    data = path.read_bytes()
    payload = gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data
    got_payload = hashlib.sha256(payload).hexdigest()
    if got_payload != payload_sum:
        raise DataError(
            f"{source.name}: {path} does not match the official data: SHA-256 of the decompressed IDX bytes "
            f"{got_payload}, expected {payload_sum} (or a {stem}.gz with SHA-256 {file_sum})"
        )


def _to_dataset(
    source: ImageSource,
    images: np.ndarray,
    labels: np.ndarray,
    paths: Mapping[str, Path],
    split: str,
    flatten: bool,
) -> Dataset:
    img_path, lab_path = paths[f"{split}_images"], paths[f"{split}_labels"]
    if images.ndim != 3 or images.shape[1:] != (28, 28) or images.dtype != np.uint8:
        raise DataError(
            f"{source.name}: {img_path} must hold uint8 images of shape (n, 28, 28), "
            f"got {images.dtype} of shape {images.shape}"
        )
    if labels.ndim != 1 or labels.dtype != np.uint8:
        raise DataError(
            f"{source.name}: {lab_path} must hold uint8 labels of shape (n,), "
            f"got {labels.dtype} of shape {labels.shape}"
        )
    if labels.shape[0] != images.shape[0]:
        raise DataError(
            f"{source.name}: {img_path} has {images.shape[0]} images but {lab_path} has {labels.shape[0]} labels"
        )
    x = images.reshape(images.shape[0], -1) if flatten else images[:, None, :, :]
    x = x.astype(np.float32) / 255.0  # exact uint8 -> [0, 1]
    return Dataset(x, labels, len(source.classes), source.name, source.classes)
