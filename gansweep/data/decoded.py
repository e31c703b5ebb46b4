"""Images decoded once: kept as uint8 in memory, or in a file on disk shared by every run.

Decoding and resizing JPEGs is slow next to a GPU's training step (docs/data.md), so a
GPU run from the raw files needs many loader workers. A preprocessed image is small (64 px RGB: 12
KiB as uint8), so gansweep decodes each data set once per preprocessing and serves the
pixels from then on:

- `in_memory`: decoded by this run into its own memory (small data sets: CIFAR-10, MNIST).
- `cached`: decoded into one file under the cache folder, keyed by the data's fingerprint
  and the preprocessing (image size, crop, channels), then mapped into memory by every run
  and every job of a sweep (the OS page cache holds one copy for all of them).

Both are lossless: `ToTensor` makes k / 255 of a uint8 k, and the uint8 is stored and
divided the same way on the way out, so every batch is bit-identical to the decoded one.

The cache file is a 4 KiB JSON header (what it holds, where from) followed by the pixels
(N, C, H, W). It is written under another name and renamed into place once complete, so a
reader sees a whole file or none; a lock makes a second job wait for the first one's build
instead of doing it again. A cache is rebuilt when its header does not match (another
format, size or preprocessing) or when the source files changed since it was made (their
sizes and modification times, `stamp`).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import sys
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from gansweep.data.sets import DataError

FORMAT = 1  # bump when the file layout or the preprocessing code changes
HEADER_BYTES = 4096


def decode(dataset: Dataset, num_workers: int = 0, batch_size: int = 512):
    """Yield the data set's images as uint8 (n, C, H, W) chunks, in index order."""
    loader = DataLoader(dataset, batch_size=batch_size, num_workers=num_workers)
    for batch in loader:
        yield batch[0].mul(255).round_().to(torch.uint8)


class DecodedImages(Dataset):
    """uint8 images (N, C, H, W) served as float in [0, 1], one-tuples like the sources'.

    Backed by a tensor in memory or by a cache file (opened lazily, so a worker process
    maps the file instead of receiving a copy of the pixels).
    """

    def __init__(self, images: torch.Tensor | None = None, *, path: Path | None = None,
                 shape: tuple[int, ...] | None = None, fingerprint: str | None = None):
        self._images, self.path = images, path
        self.shape = tuple(images.shape) if images is not None else tuple(shape)
        self.fingerprint = fingerprint

    @property
    def images(self) -> torch.Tensor:
        if self._images is None:
            # "c" (copy-on-write) maps the file read-only in effect, yet writable to numpy,
            # so torch.from_numpy shares the pages without warning about read-only memory
            pixels = np.memmap(self.path, dtype=np.uint8, mode="c", offset=HEADER_BYTES,
                               shape=self.shape)
            self._images = torch.from_numpy(pixels)
        return self._images

    def __getstate__(self):
        state = dict(self.__dict__)
        if self.path is not None:
            state["_images"] = None  # reopen the file in the worker
        return state

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, index: int):
        return (self.images[index].float().div_(255),)

    def __getitems__(self, indices: list[int]):
        # One gather and one conversion per batch instead of one per image: the DataLoader
        # calls this for a whole batch when the data set has it
        return [(image,) for image in self.images[indices].float().div_(255)]


def in_memory(dataset: Dataset, num_workers: int = 0) -> DecodedImages:
    images = torch.cat(list(decode(dataset, num_workers)))
    return DecodedImages(images, fingerprint=getattr(dataset, "fingerprint", None))


def stamp(dataset: Dataset) -> str:
    """The source files' names, sizes and modification times (`dataset.source_files`), or,
    for data whose fingerprint already hashes its bytes, that fingerprint."""
    files = getattr(dataset, "source_files", None)
    if not files:
        return dataset.fingerprint
    h = hashlib.sha1()
    for path in files:
        info = os.stat(path)
        h.update(f"{path}\0{info.st_size}\0{info.st_mtime_ns}\n".encode())
    return h.hexdigest()[:16]


def _header(dataset: Dataset) -> dict:
    return {"format": FORMAT, "fingerprint": dataset.fingerprint,
            "preprocessing": dataset.preprocessing, "stamp": stamp(dataset)}


def cache_path(dataset: Dataset, cache_dir: str | Path) -> Path:
    key = json.dumps([FORMAT, dataset.fingerprint, dataset.preprocessing], sort_keys=True)
    name = dataset.fingerprint.split("-")[0]
    return Path(cache_dir) / f"{name}-{hashlib.sha1(key.encode()).hexdigest()[:12]}.u8"


def read_header(path: Path) -> dict | None:
    """The header of a complete cache file, or None (missing, torn, or another format)."""
    try:
        with open(path, "rb") as f:
            header = json.loads(f.read(HEADER_BYTES).rstrip(b"\0"))
        shape = header["shape"]
        if path.stat().st_size != HEADER_BYTES + int(np.prod(shape)):
            return None
        return header
    except (OSError, ValueError, KeyError, TypeError):
        return None


@contextmanager
def _exclusive(lock_path: Path):
    """Hold an exclusive lock on `lock_path` (where the file system has locks; elsewhere
    jobs may build the same cache at once, which the atomic rename keeps safe)."""
    with open(lock_path, "a") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX)
        except OSError:
            pass
        try:
            yield
        finally:
            try:
                fcntl.flock(f, fcntl.LOCK_UN)
            except OSError:
                pass


def cached(dataset: Dataset, cache_dir: str | Path, num_workers: int = 0) -> DecodedImages:
    """The data set decoded, from its cache file under `cache_dir`, built first if missing
    or stale. `dataset` needs `fingerprint` and `preprocessing` (see gansweep.data.sets)."""
    if getattr(dataset, "preprocessing", None) is None:
        name = getattr(dataset, "fingerprint", type(dataset).__name__).split("-")[0]
        raise DataError(f"dataset.cache=true: the data set {name!r} is not decoded from image "
                        f"files, so there is nothing to cache; set dataset.cache=false")
    path = cache_path(dataset, cache_dir)
    wanted = _header(dataset)
    found = _valid(path, wanted)
    if found is None:
        path.parent.mkdir(parents=True, exist_ok=True)
        with _exclusive(path.with_suffix(".lock")):
            found = _valid(path, wanted)  # another job may have built it while we waited
            if found is None:
                found = _build(dataset, path, wanted, num_workers)
    return DecodedImages(path=path, shape=tuple(found["shape"]),
                         fingerprint=dataset.fingerprint)


def _valid(path: Path, wanted: dict) -> dict | None:
    header = read_header(path)
    if header is None or any(header.get(k) != v for k, v in wanted.items()):
        return None
    return header


def _build(dataset: Dataset, path: Path, header: dict, num_workers: int) -> dict:
    n = len(dataset)
    print(f"gansweep: decoding {n} images of {header['fingerprint']} once into {path} "
          f"(later runs read them from there)", file=sys.stderr, flush=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        pixels = None
        start = 0
        for chunk in decode(dataset, num_workers):
            if pixels is None:
                header = {**header, "shape": [n, *chunk.shape[1:]]}
                pixels = np.memmap(tmp, dtype=np.uint8, mode="w+", offset=HEADER_BYTES,
                                   shape=tuple(header["shape"]))
            pixels[start : start + len(chunk)] = chunk.numpy()
            start += len(chunk)
        pixels.flush()
        del pixels
        encoded = json.dumps(header).encode()
        assert len(encoded) <= HEADER_BYTES, "cache header too long"
        with open(tmp, "r+b") as f:
            f.write(encoded.ljust(HEADER_BYTES, b"\0"))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return header
