"""Small random data sets written in each real on-disk format.

They go through exactly the loaders real data goes through (torchvision's CIFAR10, MNIST,
LSUN, ImageFolder), so tests and `python -m gansweep.benchmark data` exercise the real code
paths without the real downloads. `write_cifar10` returns the files' md5s, since torchvision
checks CIFAR-10's against the official ones.
"""

from __future__ import annotations

import hashlib
import io
import pickle
import struct
from contextlib import contextmanager
from pathlib import Path

import lmdb
import numpy as np
from PIL import Image
from torchvision.datasets import CIFAR10


def _rng(seed):
    return np.random.default_rng(seed)


def jpeg_bytes(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def write_celeba(root: Path, n: int = 24, seed: int = 0) -> Path:
    """<root>/img_align_celeba/000001.jpg ..., 178 x 218 like the real aligned faces."""
    folder = root / "img_align_celeba"
    folder.mkdir(parents=True, exist_ok=True)
    rng = _rng(seed)
    for i in range(1, n + 1):
        (folder / f"{i:06d}.jpg").write_bytes(jpeg_bytes(rng.integers(0, 255, (218, 178, 3),
                                                                      dtype=np.uint8)))
    return root


def write_folder(root: Path, n: int = 24, seed: int = 0) -> Path:
    """<root>/a/0000.jpg, <root>/b/c/0001.png, <root>/0002.webp ...: a folder of one's own
    images in nested subfolders, in each format `dataset=folder` reads, of several sizes
    (short sides from 72 px), with a file that is not an image beside them."""
    rng = _rng(seed)
    places = ["a", "b/c", "."]
    for i in range(n):
        folder = root / places[i % 3]
        folder.mkdir(parents=True, exist_ok=True)
        h, w = (72 + 8 * (i % 4), 96) if i % 2 else (120, 90)
        image = Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8))
        suffix = ["jpg", "png", "webp", "JPEG"][i % 4]
        image.save(folder / f"{i:04d}.{suffix}",
                   format={"jpg": "JPEG", "JPEG": "JPEG"}.get(suffix, suffix.upper()))
    (root / "notes.txt").write_text("not an image\n")
    return root


def write_lsun_bedroom(root: Path, n: int = 24, seed: int = 0) -> Path:
    """<root>/bedroom_train_lmdb: keys -> JPEG bytes, as the official export stores them."""
    rng = _rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    env = lmdb.open(str(root / "bedroom_train_lmdb"), map_size=64 << 20)
    with env.begin(write=True) as txn:
        for i in range(n):
            h, w = (256, 342) if i % 2 else (300, 256)  # short side 256, like LSUN
            txn.put(hashlib.sha1(str(i).encode()).hexdigest().encode(),
                    jpeg_bytes(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)))
    env.close()
    return root


def write_cifar10(root: Path, per_batch: int = 4, seed: int = 0) -> dict[str, str]:
    """<root>/cifar-10-batches-py/ pickles; returns {file name: md5} for the checksums."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    rng = _rng(seed)
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for name in names:
        entry = {"data": rng.integers(0, 255, (per_batch, 3072), dtype=np.uint8),
                 "labels": rng.integers(0, 10, per_batch).tolist()}
        (folder / name).write_bytes(pickle.dumps(entry))
    (folder / "batches.meta").write_bytes(pickle.dumps({"label_names": [str(i) for i in range(10)]}))
    return {p.name: hashlib.md5(p.read_bytes()).hexdigest() for p in folder.iterdir()}


@contextmanager
def cifar10_checksums(md5: dict[str, str]):
    """Inside: torchvision's CIFAR-10 checks a fake's files against the fake's own md5s (so
    the integrity check still runs); the official checksums are restored on exit."""
    saved = CIFAR10.train_list, CIFAR10.test_list, CIFAR10.meta
    CIFAR10.train_list = [[f"data_batch_{i}", md5[f"data_batch_{i}"]] for i in range(1, 6)]
    CIFAR10.test_list = [["test_batch", md5["test_batch"]]]
    CIFAR10.meta = {**CIFAR10.meta, "md5": md5["batches.meta"]}
    try:
        yield
    finally:
        CIFAR10.train_list, CIFAR10.test_list, CIFAR10.meta = saved


def _idx(array: np.ndarray, magic: int) -> bytes:
    return struct.pack(">I", magic) + b"".join(struct.pack(">I", d) for d in array.shape) + \
        array.tobytes()


def write_mnist(root: Path, n_train: int = 20, n_test: int = 8, seed: int = 0) -> Path:
    """<root>/MNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte."""
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    rng = _rng(seed)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        images = rng.integers(0, 255, (n, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, n).astype(np.uint8)
        (raw / f"{prefix}-images-idx3-ubyte").write_bytes(_idx(images, 2051))
        (raw / f"{prefix}-labels-idx1-ubyte").write_bytes(_idx(labels, 2049))
    return root
