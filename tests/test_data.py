"""The shipped digits set, the seeded held-out split, and the iteration sampler."""

import json

import pytest
import torch

from gansweep.data.digits import Digits
from gansweep.data.module import GANData
from gansweep.data.sampler import IterationBatchSampler
from gansweep.data.split import SplitMismatch, load_or_make_split, make_split
from gansweep.errors import GansweepError


def test_digits_are_3_channel_images_in_unit_range():
    ds = Digits(image_size=32, channels=3)
    assert len(ds) == 1797
    (x,) = ds[0]
    assert x.shape == (3, 32, 32)
    assert x.min() >= 0 and x.max() <= 1 and x.max() > 0.5
    torch.testing.assert_close(x[0], x[2])  # grey repeated over channels
    assert Digits(image_size=16, channels=1)[0][0].shape == (1, 16, 16)


def test_split_is_seeded_and_partitions_the_indices():
    a = make_split("d", "fp", 100, seed=3, holdout=20)
    b = make_split("d", "fp", 100, seed=3, holdout=20)
    c = make_split("d", "fp", 100, seed=4, holdout=20)
    assert a == b and a.permutation != c.permutation
    assert len(a.heldout) == 20 and len(a.train) == 80
    assert sorted(a.heldout + a.train) == list(range(100))


def test_split_is_saved_once_and_reused(tmp_path):
    path = tmp_path / "s.json"
    first = load_or_make_split(path, "d", "fp", 50, 0, 10)
    saved = json.loads(path.read_text())
    assert saved["permutation"] == first.permutation and saved["fingerprint"] == "fp"
    # a reused split is read back, not re-drawn: tamper with the file and see it come back
    saved["permutation"] = list(reversed(saved["permutation"]))
    path.write_text(json.dumps(saved))
    assert load_or_make_split(path, "d", "fp", 50, 0, 10).permutation == saved["permutation"]


@pytest.mark.parametrize("change", [dict(fingerprint="other"), dict(size=51), dict(holdout=11)])
def test_changed_data_is_detected_not_resplit(tmp_path, change):
    path = tmp_path / "s.json"
    args = dict(dataset="d", fingerprint="fp", size=50, seed=0, holdout=10)
    load_or_make_split(path, **args)
    with pytest.raises(SplitMismatch, match=str(path)):
        load_or_make_split(path, **{**args, **change})


def test_holdout_must_leave_training_data():
    with pytest.raises(ValueError, match="dataset.holdout"):
        make_split("d", "fp", 10, 0, 10)


def test_sampler_batches_are_a_function_of_the_iteration():
    full = list(IterationBatchSampler(100, 8, total=30, seed=1))
    assert len(full) == 30 and all(len(b) == 8 for b in full)
    # one pass (12 batches) covers 96 distinct images; the next pass is reshuffled
    assert len(set(sum(full[:12], []))) == 96
    assert full[12:24] != full[:12]
    resumed = list(IterationBatchSampler(100, 8, total=30, seed=1, start=lambda: 17))
    assert resumed == full[17:]
    assert list(IterationBatchSampler(100, 8, total=30, seed=2)) != full


def test_ddp_ranks_split_each_global_batch_between_them():
    full = list(IterationBatchSampler(100, 8, total=30, seed=1))
    ranks = [list(IterationBatchSampler(100, 8, total=30, seed=1, rank=r, world_size=2))
             for r in range(2)]
    assert all(len(b) == 4 for b in ranks[0] + ranks[1])
    assert [a + b for a, b in zip(*ranks)] == full
    with pytest.raises(GansweepError, match="divisible by the number of DDP processes"):
        IterationBatchSampler(100, 9, total=30, seed=1, world_size=2)


def test_batch_larger_than_training_set_is_a_clear_error():
    with pytest.raises(GansweepError, match="train.batch_size=32 is larger than the training "
                                            "set .10 images.*lower train.batch_size"):
        IterationBatchSampler(10, 32, total=5, seed=0)


def test_a_training_set_smaller_than_the_batch_is_one_line_from_the_command(
        tmp_path, monkeypatch, capsys):
    from conftest import TINY, run_gansweep
    from gansweep.data.fakes import write_folder

    root = write_folder(tmp_path / "few", n=8)
    said = run_gansweep(monkeypatch, capsys, tmp_path, *TINY, "dataset=folder",
                        f"dataset.root={root}", "dataset.holdout=4", "recon.n_images=2",
                        "final.n_images=4", code=1)
    assert "Traceback" not in said
    assert "gansweep: train.batch_size=32 is larger than the training set (4 images" in said


def test_datamodule_serves_training_batches_and_heldout_images(tmp_path):
    ds = Digits(image_size=16)
    data = GANData(ds, "digits", holdout=100, split_seed=0, split_path=tmp_path / "s.json",
                   batch_size=4, iters=3, seed=0)
    batches = list(data.train_dataloader())
    assert len(batches) == 3 and batches[0][0].shape == (4, 3, 16, 16)
    held = data.heldout_images(10)
    torch.testing.assert_close(held[3], ds[data.split.heldout[3]][0])
    heldout = set(data.split.heldout)
    train_indices = data.split.train
    sampler = data.train_dataloader().batch_sampler
    assert not heldout & {train_indices[i] for b in sampler for i in b}  # no test image trains
    with pytest.raises(ValueError, match="dataset.holdout"):
        data.heldout_images(101)
