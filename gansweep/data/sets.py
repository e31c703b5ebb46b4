"""The paper's data sets (and MNIST) as researchers keep them on disk, via torchvision.

Every builder returns a torch Dataset of (image, ...) tuples with images (C, H, W) in [0, 1],
preprocessed as in the paper: center crop, resize the short side, center crop
(`paper_transform`), and carries a `fingerprint` (size + a hash of its contents' names or
bytes) that ties the saved split to this exact data, its `preprocessing` settings and, where
the fingerprint hashes names only, its `source_files` (the decoded-image cache,
`gansweep.data.decoded`, checks their sizes and times to notice changed bytes). Missing
data raises `DataNotFound` naming the data set, the path looked at, the layout expected
and where to get it; an image that cannot be decoded raises `BadImage` naming the file.

| name         | on disk under `root`                                  | torchvision class |
|--------------|-------------------------------------------------------|-------------------|
| celeba       | img_align_celeba/*.jpg                                | ImageFolder       |
| lsun_bedroom | bedroom_train_lmdb/ (the official lmdb)               | LSUN              |
| cifar10      | cifar-10-batches-py/ (train and test sets together)   | CIFAR10           |
| mnist        | MNIST/raw/*-ubyte (train and test sets together)      | MNIST             |
| folder       | any images below root: *.jpg, *.jpeg, *.png, *.webp   | (`ImageFiles`)    |
"""

from __future__ import annotations

import hashlib
import os
from contextlib import contextmanager
from pathlib import Path

import torch
import numpy as np
from PIL import Image, UnidentifiedImageError
from torch.utils.data import ConcatDataset, Dataset
from torchvision import datasets, transforms

from gansweep.errors import GansweepError


class DataError(GansweepError):
    """Data that cannot be used as configured; the message says what to do."""


class DataNotFound(DataError):
    def __init__(self, name: str, path: Path, layout: str, source: str):
        super().__init__(
            f"data set {name!r} not found at {path}\n"
            f"  expected layout: {layout}\n"
            f"  get it from: {source}\n"
            f"  then point dataset.root at it (or set GANSWEEP_DATA to the folder holding it)"
        )


class BadImage(DataError):
    pass


def to_rgb(image: Image.Image) -> Image.Image:
    return image.convert("RGB")


def paper_transform(image_size: int, crop: int | None = None, channels: int = 3):
    """Center crop to `crop` (if given), resize the short side, center crop; -> [0, 1]."""
    steps = [transforms.CenterCrop(crop)] if crop else []
    steps += [transforms.Resize(image_size), transforms.CenterCrop(image_size)]
    if channels == 3:
        steps.append(to_rgb)  # a function, not a lambda: workers may need to pickle it
    steps.append(transforms.ToTensor())
    return transforms.Compose(steps)


# PIL's modes for pixels wider than 8 bits (a 16-bit grayscale PNG opens as "I;16"). PIL's
# own convert("RGB") clips their values at 255, which reads a 16-bit image as all white;
# these are scaled by the range of 16 bits instead. 16-bit colour PNGs PIL itself opens as
# 8-bit "RGB", correctly scaled.
SIXTEEN_BIT_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I")


def eight_bit(image: Image.Image, path: str) -> Image.Image:
    """`image` with 8-bit pixels: a 16-bit one scaled by 255 / 65535, others as they are."""
    if image.mode not in SIXTEEN_BIT_MODES:
        return image
    pixels = np.asarray(image, dtype=np.int64)
    if pixels.min(initial=0) < 0 or pixels.max(initial=0) > 65535:
        raise BadImage(f"image {path} has pixel values from {pixels.min()} to {pixels.max()} "
                       f"(PIL mode {image.mode}), outside the 16-bit range 0..65535 gansweep "
                       f"reads: save it as 8 or 16 bits per channel")
    return Image.fromarray(np.round(pixels * (255 / 65535)).astype(np.uint8), mode="L")


def checked_loader(path: str) -> Image.Image:
    """torchvision's image loading, with the file named when it cannot be decoded, and
    16-bit images read by their range (`eight_bit`)."""
    try:
        with open(path, "rb") as f:
            image = Image.open(f)
            return eight_bit(image, path).convert("RGB")
    except (OSError, UnidentifiedImageError, SyntaxError) as error:
        raise BadImage(f"cannot read image {path}: {error}. Replace or delete the file; "
                       f"deleting changes the data set, so its split must be remade") from error


def _digest(items) -> str:
    h = hashlib.sha1()
    for item in items:
        h.update(item if isinstance(item, bytes) else str(item).encode())
    return h.hexdigest()[:12]


def _require_size(image: Image.Image, path: str, min_side: int, setting: str) -> None:
    if min(image.size) < min_side:
        width, height = image.size
        raise DataError(f"image {path} is {width}x{height} px, too small for {setting} "
                        f"(its short side must be at least {min_side} px, or it would be "
                        f"padded or upscaled); lower {setting.split('=')[0]} or remove the "
                        f"image (which changes the data set, so its split must be remade)")


def _require(name: str, path: Path, layout: str, source: str) -> None:
    if not path.exists() or (path.is_dir() and not any(path.iterdir())):
        raise DataNotFound(name, path, layout, source)


def celeba(root: str, image_size: int = 64, crop: int | None = 160) -> Dataset:
    """CelebA's aligned and cropped faces (178 x 218 JPEGs)."""
    root = Path(root)
    layout = "<root>/img_align_celeba/000001.jpg ... 202599.jpg"
    source = "https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html (Align&Cropped Images)"
    _require("celeba", root / "img_align_celeba", layout, source)
    ds = datasets.ImageFolder(
        str(root), transform=paper_transform(image_size, crop), loader=checked_loader,
        is_valid_file=lambda p: Path(p).parent.name == "img_align_celeba"
        and p.lower().endswith((".jpg", ".jpeg", ".png")),
        allow_empty=True,  # other folders under root (e.g. img_celeba/) are not ours
    )
    if len(ds) == 0:
        raise DataNotFound("celeba", root / "img_align_celeba", layout, source)
    ds.fingerprint = f"celeba-{len(ds)}-{_digest(Path(p).name for p, _ in ds.samples)}"
    ds.preprocessing = dict(image_size=image_size, crop=crop, channels=3)
    ds.source_files = [p for p, _ in ds.samples]
    return ds


@contextmanager
def _working_directory(path: Path):
    previous = os.getcwd()
    path.mkdir(parents=True, exist_ok=True)
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(previous)


class _CheckedLSUN(datasets.LSUN):
    def __getitem__(self, index):
        try:
            return super().__getitem__(index)
        except (OSError, UnidentifiedImageError, SyntaxError) as error:
            db, key = self._db_and_key(index)
            raise BadImage(f"cannot read image {key!r} in {db}: {error}") from error

    def _db_and_key(self, index):
        for db, end in zip(self.dbs, self.indices):
            if index < end:
                return db.root, db.keys[index - (end - db.length)]
        return self.root, index


def lsun_bedroom(root: str, image_size: int = 64, crop: int | None = None,
                 cache_dir: str = ".") -> Dataset:
    """LSUN bedroom from the official lmdb (`bedroom_train_lmdb`)."""
    root = Path(root)
    _require("lsun_bedroom", root / "bedroom_train_lmdb" / "data.mdb",
             "<root>/bedroom_train_lmdb/{data.mdb,lock.mdb}",
             "https://github.com/fyu/lsun (download.py -c bedroom, then unzip)")
    # torchvision caches the lmdb's key list in the working directory; keep it in ours
    with _working_directory(Path(cache_dir).resolve()):
        ds = _CheckedLSUN(str(root), classes=["bedroom_train"],
                          transform=paper_transform(image_size, crop))
    ds.fingerprint = f"lsun_bedroom-{len(ds)}-{_digest(ds.dbs[0].keys)}"
    ds.preprocessing = dict(image_size=image_size, crop=crop, channels=3)
    ds.source_files = [str(root / "bedroom_train_lmdb" / "data.mdb")]
    return ds


def _torchvision_pair(name: str, cls, root: Path, download: bool, preprocessing: dict,
                      layout: str, source: str) -> Dataset:
    """The train and test sets of a torchvision data set, together (as the paper did)."""
    transform = paper_transform(**preprocessing)
    try:
        parts = [cls(str(root), train=train, transform=transform, download=download)
                 for train in (True, False)]
    except RuntimeError as error:  # torchvision: "Dataset not found or corrupted ..."
        raise DataNotFound(name, root, layout, f"{source}, or dataset.download=true "
                           f"(torchvision: {error})") from error
    ds = ConcatDataset(parts)
    arrays = [p.data.numpy() if isinstance(p.data, torch.Tensor) else p.data for p in parts]
    ds.fingerprint = f"{name}-{len(ds)}-{_digest(a.tobytes() for a in arrays)}"
    ds.preprocessing = preprocessing
    return ds


def cifar10(root: str, image_size: int = 32, download: bool = False) -> Dataset:
    return _torchvision_pair(
        "cifar10", datasets.CIFAR10, Path(root), download, dict(image_size=image_size),
        "<root>/cifar-10-batches-py/{data_batch_1..5,test_batch,batches.meta}",
        "https://www.cs.toronto.edu/~kriz/cifar.html (CIFAR-10 python version)")


def mnist(root: str, image_size: int = 32, channels: int = 3, download: bool = False) -> Dataset:
    return _torchvision_pair(
        "mnist", datasets.MNIST, Path(root), download,
        dict(image_size=image_size, channels=channels),
        "<root>/MNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte",
        "the MNIST idx files (torchvision's mirrors)")


IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")


class ImageFiles(Dataset):
    """Image files, in the order given, as (image,) tuples: each read with `checked_loader`,
    refused if its short side is under `min_side` (`setting` says which setting asks it),
    then transformed. torchvision's ImageFolder wants one folder per class; a folder of
    one's own images has any layout."""

    def __init__(self, paths: list[str], transform, min_side: int, setting: str):
        self.paths, self.transform = paths, transform
        self.min_side, self.setting = min_side, setting

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int):
        path = self.paths[index]
        image = checked_loader(path)
        _require_size(image, path, self.min_side, self.setting)
        return (self.transform(image),)


def folder(root: str, image_size: int = 64, crop: int | None = None) -> Dataset:
    """Every .jpg, .jpeg, .png and .webp file below `root` (any depth), in path order. The
    fingerprint hashes the paths relative to root, so moving the folder keeps its split."""
    root = Path(root)
    layout = "<root>/**/*.{jpg,jpeg,png,webp} (any subfolders)"
    _require("folder", root, layout, "your own images: point dataset.root at their folder")
    paths = sorted(str(p) for p in root.rglob("*")
                   if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not paths:
        others = sum(1 for p in root.rglob("*") if p.is_file())
        raise DataError(f"no images in {root}: dataset=folder reads {', '.join(IMAGE_SUFFIXES)} "
                        f"files below dataset.root, and found none ({others} other files); "
                        f"point dataset.root at a folder of images")
    setting = f"dataset.crop={crop}" if crop else f"dataset.image_size={image_size}"
    ds = ImageFiles(paths, paper_transform(image_size, crop), crop or image_size, setting)
    ds[0]  # one image decoded now: a folder of unreadable files fails here, naming one
    ds.fingerprint = f"folder-{len(ds)}-{_digest(Path(p).relative_to(root) for p in paths)}"
    ds.preprocessing = dict(image_size=image_size, crop=crop, channels=3)
    ds.source_files = paths
    return ds
