"""The real data sets through torchvision's real loaders, on fixtures in their real formats."""

import numpy as np
import pytest
import torch
from torchvision import datasets

from conftest import DATASETS, train_run
from gansweep.data import sets
from gansweep.data.fakes import (cifar10_checksums, write_celeba, write_cifar10, write_folder,
                                 write_lsun_bedroom, write_mnist)
from gansweep.data.split import SplitMismatch
from gansweep.job import train


@pytest.fixture
def cifar_root(tmp_path):
    """CIFAR-10 pickles, with torchvision's expected checksums set to the fixture's own: the
    integrity check still runs, on our files (users keep the official checksums)."""
    with cifar10_checksums(write_cifar10(tmp_path / "cifar10")):
        yield tmp_path / "cifar10"


def test_official_cifar10_checksums_are_restored(tmp_path):
    official = datasets.CIFAR10.train_list
    with cifar10_checksums(write_cifar10(tmp_path)):
        assert datasets.CIFAR10.train_list != official
    assert datasets.CIFAR10.train_list == official


BUILDERS = {
    "celeba": lambda root: sets.celeba(str(write_celeba(root)), image_size=64),
    "lsun_bedroom": lambda root: sets.lsun_bedroom(str(write_lsun_bedroom(root)), 64,
                                                   cache_dir=str(root / "cache")),
    "mnist": lambda root: sets.mnist(str(write_mnist(root)), image_size=32),
    "folder": lambda root: sets.folder(str(write_folder(root)), image_size=64),
}


@pytest.mark.parametrize("name, size, count", [("celeba", 64, 24), ("lsun_bedroom", 64, 24),
                                               ("mnist", 32, 28), ("folder", 64, 24)])
def test_each_set_loads_as_paper_preprocessed_images(tmp_path, name, size, count):
    ds = BUILDERS[name](tmp_path / name)
    assert len(ds) == count
    x = ds[3][0]
    assert x.shape == (3, size, size) and x.dtype == torch.float32
    assert 0 <= x.min() and x.max() <= 1
    assert ds.fingerprint.startswith(f"{name}-{count}-")


def test_cifar10_is_train_and_test_together_with_checksums_checked(cifar_root):
    ds = sets.cifar10(str(cifar_root))
    assert len(ds) == 6 * 4  # five train batches and the test batch
    assert ds[0][0].shape == (3, 32, 32)
    with open(cifar_root / "cifar-10-batches-py" / "data_batch_2", "ab") as f:
        f.write(b"corrupt")
    with pytest.raises(sets.DataNotFound, match="corrupted"):
        sets.cifar10(str(cifar_root))


def test_paper_transform_center_crops_then_resizes():
    from PIL import Image

    # a 178x218 image whose central 160x160 is white and the rest black
    image = Image.new("RGB", (178, 218))
    image.paste((255, 255, 255), (9, 29, 169, 189))
    x = sets.paper_transform(64, crop=160)(image)
    assert x.shape == (3, 64, 64) and x.min() > 0.99  # only the white centre remains
    x = sets.paper_transform(64, crop=None)(image)
    assert x.shape == (3, 64, 64) and x.min() < 0.01  # short side resized: black borders stay


def test_fingerprint_changes_with_the_data(tmp_path):
    a = sets.celeba(str(write_celeba(tmp_path / "a", n=5)))
    b = sets.celeba(str(write_celeba(tmp_path / "b", n=5)))
    c = sets.celeba(str(write_celeba(tmp_path / "c", n=6)))
    assert a.fingerprint == b.fingerprint != c.fingerprint  # names and size, not the bytes


@pytest.mark.parametrize("name, build, layout", [
    ("celeba", lambda r: sets.celeba(str(r)), "img_align_celeba"),
    ("lsun_bedroom", lambda r: sets.lsun_bedroom(str(r), cache_dir=str(r)), "bedroom_train_lmdb"),
    ("cifar10", lambda r: sets.cifar10(str(r)), "cifar-10-batches-py"),
    ("mnist", lambda r: sets.mnist(str(r)), "MNIST/raw"),
])
def test_missing_data_names_the_set_the_path_the_layout_and_a_source(tmp_path, name, build,
                                                                     layout):
    root = tmp_path / "nothing-here"
    with pytest.raises(sets.DataNotFound) as error:
        build(root)
    message = str(error.value)
    assert f"data set {name!r} not found at {root}" in message
    assert layout in message and "get it from: " in message and "dataset.root" in message


def test_an_empty_image_folder_is_missing_data(tmp_path):
    (tmp_path / "img_align_celeba").mkdir()
    with pytest.raises(sets.DataNotFound, match="img_align_celeba"):
        sets.celeba(str(tmp_path))


@pytest.mark.parametrize("damage", [lambda b: b[: len(b) // 3], lambda b: b"not an image"])
def test_a_corrupt_or_truncated_image_names_the_file(tmp_path, damage):
    ds = sets.celeba(str(write_celeba(tmp_path, n=4)))
    path = tmp_path / "img_align_celeba" / "000003.jpg"
    path.write_bytes(damage(path.read_bytes()))
    with pytest.raises(sets.BadImage, match="000003.jpg"):
        for i in range(len(ds)):
            ds[i]


def test_a_corrupt_lsun_record_names_its_key(tmp_path):
    import lmdb

    root = write_lsun_bedroom(tmp_path, n=4)
    env = lmdb.open(str(root / "bedroom_train_lmdb"))
    with env.begin(write=True) as txn:
        key = next(txn.cursor().iternext(keys=True, values=False))
        txn.put(key, b"garbage")
    env.close()
    ds = sets.lsun_bedroom(str(root), cache_dir=str(tmp_path / "cache"))
    with pytest.raises(sets.BadImage, match=key.decode()):
        for i in range(len(ds)):
            ds[i]


def test_lsun_key_cache_stays_out_of_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_lsun_bedroom(tmp_path / "lsun", n=3)
    sets.lsun_bedroom(str(tmp_path / "lsun"), cache_dir=str(tmp_path / "cache"))
    assert not list(tmp_path.glob("_cache_*"))
    assert list((tmp_path / "cache").glob("_cache_*"))


SMALL_SPLIT = ["dataset.holdout=10", "recon.n_images=8", "final.n_images=10",
               "train.batch_size=4"]


@pytest.mark.slow
@pytest.mark.parametrize("name", [d for d in DATASETS if d != "digits"])  # digits ships
def test_a_few_iterations_on_each_set_at_its_real_size(make_cfg, tmp_path, request, name):
    root = tmp_path / name
    if name == "cifar10":
        root = request.getfixturevalue("cifar_root")
    else:
        {"celeba": write_celeba, "lsun_bedroom": write_lsun_bedroom, "mnist": write_mnist,
         "folder": write_folder}[name](root)
    cfg = make_cfg(f"dataset={name}", f"dataset.root={root}", "dataset.num_workers=0",
                   *SMALL_SPLIT)
    run = train_run(cfg)
    size = 64 if name in ("celeba", "lsun_bedroom", "folder") else 32
    assert cfg.dataset.image_size == size
    assert (run / "samples" / "iter_000006.png").exists()
    assert (run / "summary.json").exists()


def test_a_changed_data_set_is_detected_not_resplit(make_cfg, tmp_path):
    root = write_celeba(tmp_path / "celeba", n=20)
    overrides = ["dataset=celeba", f"dataset.root={root}", "dataset.num_workers=0",
                 "train.iters=1", *SMALL_SPLIT]
    train(make_cfg(*overrides))
    write_celeba(root, n=21)  # one more image under the same root
    with pytest.raises(SplitMismatch, match="move that file away"):
        train(make_cfg(*overrides, f"run_dir={tmp_path}/second"))


def test_workers_load_the_same_batches(make_cfg, tmp_path):
    from hydra.utils import instantiate

    root = write_celeba(tmp_path / "celeba", n=20)
    batches = []
    for workers in (0, 2):
        cfg = make_cfg("dataset=celeba", f"dataset.root={root}", f"dataset.num_workers={workers}",
                       "train.iters=3", *SMALL_SPLIT)
        batches.append([b[0] for b in instantiate(cfg.data).train_dataloader()])
    for a, b in zip(*batches):
        torch.testing.assert_close(a, b)


def test_in_memory_data_is_lossless(make_cfg, cifar_root):
    from hydra.utils import instantiate

    cfg = make_cfg("dataset=cifar10", f"dataset.root={cifar_root}", *SMALL_SPLIT)
    assert cfg.data.in_memory
    held = instantiate(cfg.data).heldout_images(5)
    cfg.data.in_memory = False
    torch.testing.assert_close(instantiate(cfg.data).heldout_images(5), held, rtol=0, atol=0)


@pytest.mark.parametrize("name", DATASETS)
def test_every_data_set_defaults_to_its_own_folder_under_the_data_root(tmp_path, name):
    from conftest import compose_config

    cfg = compose_config(tmp_path, f"dataset={name}", "paths.data_root=/data")
    root = cfg.dataset.get("root")
    assert root is None or root == f"/data/{name}"  # docs/data.md: <data root>/<name>


# --- dataset=folder: a folder of one's own images ------------------------------------------

def test_a_folder_is_every_image_below_it_in_path_order(tmp_path):
    root = write_folder(tmp_path / "mine", n=9)
    ds = sets.folder(str(root), image_size=32)
    found = sorted(p for p in root.rglob("*") if p.suffix.lower() in sets.IMAGE_SUFFIXES)
    assert ds.paths == [str(p) for p in found] and len(ds) == 9  # notes.txt left out
    assert {p.suffix for p in found} == {".jpg", ".png", ".webp", ".JPEG"}
    assert {p.parent for p in found} == {root, root / "a", root / "b" / "c"}
    image = ds[1][0]
    assert image.shape == (3, 32, 32) and 0 <= image.min() and image.max() <= 1
    # the paper's preprocessing: the same pixels torchvision's transform gives the file
    from PIL import Image
    expected = sets.paper_transform(32)(Image.open(ds.paths[1]).convert("RGB"))
    assert torch.equal(image, expected)


def test_a_folder_moved_elsewhere_keeps_its_fingerprint_and_a_new_image_changes_it(tmp_path):
    first = sets.folder(str(write_folder(tmp_path / "one", n=6)), image_size=32).fingerprint
    assert sets.folder(str(write_folder(tmp_path / "two", n=6)), 32).fingerprint == first
    write_folder(tmp_path / "two", n=7)
    assert sets.folder(str(tmp_path / "two"), 32).fingerprint != first


def test_an_empty_folder_or_one_without_images_is_one_clear_line(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(sets.DataNotFound, match="data set 'folder' not found"):
        sets.folder(str(tmp_path / "empty"))
    (tmp_path / "texts" / "sub").mkdir(parents=True)
    (tmp_path / "texts" / "sub" / "a.txt").write_text("x")
    with pytest.raises(sets.DataError, match=r"no images in .*texts.*found none \(1 other files\)"):
        sets.folder(str(tmp_path / "texts"))


def test_a_folder_of_unreadable_files_fails_at_once_naming_one(tmp_path):
    root = tmp_path / "broken"
    root.mkdir()
    for i in range(3):
        (root / f"{i}.jpg").write_bytes(b"not an image")
    with pytest.raises(sets.BadImage, match=r"cannot read image .*0\.jpg"):
        sets.folder(str(root))


def test_an_image_too_small_to_crop_names_the_file_its_size_and_the_setting(tmp_path):
    from PIL import Image

    root = write_folder(tmp_path / "mine", n=3)
    Image.new("RGB", (50, 40)).save(root / "a" / "tiny.png")
    ds = sets.folder(str(root), image_size=32, crop=60)
    tiny = ds.paths.index(str(root / "a" / "tiny.png"))
    with pytest.raises(sets.DataError, match=r"tiny\.png is 50x40 px, too small for "
                                              r"dataset\.crop=60 .* lower dataset\.crop"):
        ds[tiny]
    with pytest.raises(sets.DataError, match="too small for dataset.image_size=64"):
        sets.folder(str(root), image_size=64)[tiny]
    assert sets.folder(str(root), image_size=32)[tiny][0].shape == (3, 32, 32)


@pytest.mark.slow
def test_a_folder_trains_with_its_saved_split_and_its_decoded_cache(make_cfg, tmp_path):
    import json

    root = write_folder(tmp_path / "my faces", n=24)
    overrides = ["dataset=folder", f"dataset.root={root}", "dataset.num_workers=0",
                 *SMALL_SPLIT]
    cfg = make_cfg(*overrides)
    assert cfg.dataset.name == "folder-my faces" and cfg.data.cache
    run = train_run(cfg)
    split = json.loads((run / "split.json").read_text())
    assert split["dataset"] == "folder-my faces" and split["seed"] == 0
    assert len(split["permutation"]) == 24 and split["holdout"] == 10
    assert list((tmp_path / "cache" / "decoded").glob("*"))  # decoded once, for every run
    assert json.loads((run / "summary.json").read_text())["dataset"] == "folder-my faces"


def test_runs_of_two_folders_in_one_run_directory_are_refused(make_cfg, tmp_path):
    """dataset.root is not part of a run's name: a second folder's run would otherwise
    resume, or skip as finished, the first folder's."""
    first = write_folder(tmp_path / "cats", n=20)
    second = write_folder(tmp_path / "dogs", n=20, seed=1)
    settings = ["dataset=folder", "dataset.num_workers=0", "train.iters=1", *SMALL_SPLIT]
    missing = make_cfg(*settings, f"dataset.root={tmp_path / 'nothing'}")
    with pytest.raises(sets.DataNotFound):
        train(missing)  # a run that failed before training leaves nothing to protect
    train(make_cfg(*settings, f"dataset.root={first}"))
    from gansweep.validate import ConfigError
    with pytest.raises(ConfigError, match="holds a run started with dataset.name=folder-cats, "
                                          "but this command gives dataset.name=folder-dogs"
                                          ".*a name of their own: dataset.name=..."):
        train(make_cfg(*settings, f"dataset.root={second}"))


def test_a_16_bit_image_is_read_by_its_range_not_as_white(tmp_path):
    """A 16-bit grayscale PNG opens in PIL's mode I;16, whose convert("RGB") clips at 255:
    every pixel would read as white. Its values are scaled by 255 / 65535 instead."""
    from PIL import Image

    root = tmp_path / "deep"
    root.mkdir()
    values = (np.arange(64 * 64).reshape(64, 64) * 16).astype(np.uint16)  # 0 .. 65520
    Image.fromarray(values).save(root / "gradient.png")
    assert Image.open(root / "gradient.png").mode == "I;16"
    image = sets.folder(str(root), image_size=64)[0][0]
    expected = torch.from_numpy(values / 65535).float()
    assert image.shape == (3, 64, 64)
    assert (image - expected).abs().max() <= 0.5 / 255 + 1e-6
    assert image.min() == 0 and image.max() > 0.99


def test_an_image_that_fails_in_a_loader_worker_is_one_line_naming_the_file(
        monkeypatch, capsys, tmp_path):
    """Decoded in a DataLoader worker (the cache's build, default 4 workers), a damaged
    image reached the user as the worker's whole traceback; now as the line it raised."""
    from conftest import TINY, run_gansweep

    root = write_folder(tmp_path / "mine", n=12)
    damaged = sorted(p for p in root.rglob("*") if p.suffix.lower() in sets.IMAGE_SUFFIXES)[7]
    damaged.write_bytes(damaged.read_bytes()[:200])
    said = run_gansweep(monkeypatch, capsys, tmp_path, *TINY, "dataset=folder",
                        f"dataset.root={root}", "dataset.num_workers=2", "dataset.holdout=4",
                        "recon.n_images=2", "final.n_images=4", code=1)
    lines = [line for line in said.splitlines() if "[ERROR]" in line]
    assert len(lines) == 1 and f"gansweep: cannot read image {damaged}" in lines[0]
    assert "Traceback" not in said and "worker process" not in said
