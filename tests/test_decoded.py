"""Decoded images: in memory and in the shared cache file, bit-identical to decoding."""

import os
import pickle
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from gansweep.data import decoded, sets
from gansweep.data.fakes import jpeg_bytes, write_celeba, write_lsun_bedroom


def all_images(ds) -> torch.Tensor:
    return torch.stack([ds[i][0] for i in range(len(ds))])


@pytest.fixture
def celeba(tmp_path):
    return write_celeba(tmp_path / "celeba", n=12)


def test_cache_serves_exactly_the_decoded_images(celeba, tmp_path):
    source = sets.celeba(str(celeba), image_size=32)
    cached = decoded.cached(source, tmp_path / "cache")
    assert cached.fingerprint == source.fingerprint  # the split stays tied to the data
    assert len(cached) == len(source)
    torch.testing.assert_close(all_images(cached), all_images(source), rtol=0, atol=0)
    batch = [image for (image,) in cached.__getitems__([5, 0, 5, 11])]
    torch.testing.assert_close(torch.stack(batch), all_images(source)[[5, 0, 5, 11]],
                               rtol=0, atol=0)


def test_cache_is_built_once_then_read(celeba, tmp_path, monkeypatch, capsys):
    decoded.cached(sets.celeba(str(celeba), image_size=32), tmp_path / "cache")
    assert "decoding 12 images" in capsys.readouterr().err

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded again")

    monkeypatch.setattr(decoded, "decode", no_decoding)
    again = decoded.cached(sets.celeba(str(celeba), image_size=32), tmp_path / "cache")
    assert len(again) == 12 and again[3][0].shape == (3, 32, 32)


def test_each_preprocessing_has_its_own_cache(celeba, tmp_path):
    small = decoded.cached(sets.celeba(str(celeba), image_size=16), tmp_path / "cache")
    large = decoded.cached(sets.celeba(str(celeba), image_size=32), tmp_path / "cache")
    uncropped = decoded.cached(sets.celeba(str(celeba), image_size=32, crop=None),
                               tmp_path / "cache")
    assert len({small.path, large.path, uncropped.path}) == 3
    assert small[0][0].shape == (3, 16, 16) and large[0][0].shape == (3, 32, 32)
    assert not torch.equal(large[0][0], uncropped[0][0])


def test_changed_image_bytes_make_the_cache_stale(celeba, tmp_path):
    before = decoded.cached(sets.celeba(str(celeba), image_size=32), tmp_path / "cache")[4][0]
    image = celeba / "img_align_celeba" / "000005.jpg"
    image.write_bytes(jpeg_bytes(np.full((218, 178, 3), 200, dtype=np.uint8)))  # same name
    os.utime(image, ns=(1, 1))  # a different time even on a coarse-grained file system
    source = sets.celeba(str(celeba), image_size=32)
    after = decoded.cached(source, tmp_path / "cache")[4][0]
    assert not torch.equal(before, after)
    torch.testing.assert_close(after, source[4][0], rtol=0, atol=0)


@pytest.mark.parametrize("damage", ["truncate", "header"])
def test_a_torn_or_foreign_cache_file_is_rebuilt(celeba, tmp_path, damage):
    source = sets.celeba(str(celeba), image_size=32)
    path = decoded.cached(source, tmp_path / "cache").path
    if damage == "truncate":
        os.truncate(path, path.stat().st_size - 100)
    else:
        with open(path, "r+b") as f:
            f.write(b"{not json")
    rebuilt = decoded.cached(source, tmp_path / "cache")
    assert rebuilt.path == path and decoded.read_header(path) is not None
    torch.testing.assert_close(all_images(rebuilt), all_images(source), rtol=0, atol=0)


def test_lsun_lmdb_is_cached_and_its_changes_detected(tmp_path):
    root = write_lsun_bedroom(tmp_path / "lsun", n=6)
    build = lambda: sets.lsun_bedroom(str(root), 32, cache_dir=str(tmp_path / "keys"))
    cached = decoded.cached(build(), tmp_path / "cache")
    torch.testing.assert_close(all_images(cached), all_images(build()), rtol=0, atol=0)
    db = root / "bedroom_train_lmdb" / "data.mdb"
    os.utime(db, ns=(1, 1))  # the lmdb rewritten
    header = decoded.read_header(cached.path)
    decoded.cached(build(), tmp_path / "cache")
    assert decoded.read_header(cached.path)["stamp"] != header["stamp"]


def test_a_pickled_cache_carries_a_path_not_the_pixels(celeba, tmp_path):
    cached = decoded.cached(sets.celeba(str(celeba), image_size=32), tmp_path / "cache")
    cached[0]  # opened here
    blob = pickle.dumps(cached)
    assert len(blob) < 2000  # 12 images of 3 KiB would not fit
    torch.testing.assert_close(pickle.loads(blob)[7][0], cached[7][0], rtol=0, atol=0)


@pytest.mark.slow  # 4 s: two processes
def test_two_jobs_building_at_once_build_it_once(celeba, tmp_path):
    script = textwrap.dedent(f"""
        from gansweep.data import decoded, sets
        ds = decoded.cached(sets.celeba({str(celeba)!r}, image_size=32), {str(tmp_path)!r})
        print(float(ds[11][0].sum()))
    """)
    jobs = [subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outputs = [job.communicate(timeout=120) for job in jobs]
    assert [job.returncode for job in jobs] == [0, 0], outputs
    assert sum("decoding 12 images" in err for _, err in outputs) == 1
    assert outputs[0][0] == outputs[1][0]
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_data_without_image_files_cannot_be_cached(make_cfg):
    from gansweep.errors import build

    cfg = make_cfg("dataset.cache=true")  # the digits, made in memory
    with pytest.raises(sets.DataError, match="set dataset.cache=false"):
        build(cfg.data)


@pytest.mark.parametrize("workers", [0, 2])
def test_training_batches_are_the_same_with_and_without_the_cache(make_cfg, celeba, workers):
    from hydra.utils import instantiate

    runs = []
    for cache in (False, True):
        cfg = make_cfg("dataset=celeba", f"dataset.root={celeba}", f"dataset.cache={cache}",
                       f"dataset.num_workers={workers}", "dataset.holdout=4",
                       "recon.n_images=2", "final.n_images=4", "train.batch_size=3",
                       "train.iters=4")
        data = instantiate(cfg.data)
        assert isinstance(data.dataset, decoded.DecodedImages) == cache
        runs.append(([b[0] for b in data.train_dataloader()], data.heldout_images(4)))
    (plain_batches, plain_held), (cached_batches, cached_held) = runs
    assert len(cached_batches) == 4
    for a, b in zip(plain_batches, cached_batches):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    torch.testing.assert_close(plain_held, cached_held, rtol=0, atol=0)
