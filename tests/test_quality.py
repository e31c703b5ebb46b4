"""Sample quality (gansweep/quality): FID and KID against their formulas, closed forms and a
hand computation; the Inception weights read from a local file, or one line where there are
none; the digits classifier, deterministic and accurate."""

import numpy as np
import pytest
import scipy.linalg
import torch

from gansweep.errors import GansweepError
from gansweep.quality.metrics import frechet_distance, kernel_distance, quality


def gaussian(n, mean, std, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.tensor(mean, dtype=torch.float64) + torch.randn(
        n, len(mean), generator=g, dtype=torch.float64) * torch.tensor(std, dtype=torch.float64)


def test_fid_is_the_frechet_distance_of_the_fitted_gaussians_scipys_way():
    real, fake = gaussian(500, [0, 1, 2], [1, 2, 0.5], 0), gaussian(400, [1, 1, 0], [2, 1, 1], 1)
    r, f = real.numpy(), fake.numpy()
    mu_r, mu_f = r.mean(0), f.mean(0)
    s_r, s_f = np.cov(r, rowvar=False), np.cov(f, rowvar=False)
    by_hand = (np.sum((mu_r - mu_f) ** 2)
               + np.trace(s_r + s_f - 2 * scipy.linalg.sqrtm(s_r @ s_f).real))
    assert frechet_distance(real, fake) == pytest.approx(by_hand, rel=1e-9)


def test_fid_of_two_gaussians_approaches_its_closed_form():
    """N(m1, diag(v1)) vs N(m2, diag(v2)): ||m1 - m2||^2 + sum(v1 + v2 - 2 sqrt(v1 v2))."""
    m1, s1, m2, s2 = [0.0, 1.0, -1.0], [1.0, 2.0, 0.5], [0.5, 1.0, 0.0], [1.5, 1.0, 1.0]
    exact = sum((a - b) ** 2 for a, b in zip(m1, m2)) + sum(
        a * a + b * b - 2 * a * b for a, b in zip(s1, s2))
    fid = frechet_distance(gaussian(200_000, m1, s1, 2), gaussian(200_000, m2, s2, 3))
    assert fid == pytest.approx(exact, rel=0.01)
    same = frechet_distance(gaussian(200_000, m1, s1, 4), gaussian(200_000, m1, s1, 5))
    assert same == pytest.approx(0, abs=2e-4)


def unbiased_mmd(x, y):
    """Bińkowski et al.'s unbiased MMD^2 with k(a, b) = (a.b / d + 1)^3, by hand."""
    d = x.shape[1]
    k = lambda a, b: (a @ b.T / d + 1) ** 3  # noqa: E731
    kxx, kyy, kxy = k(x, x), k(y, y), k(x, y)
    n, m = len(x), len(y)
    return ((kxx.sum() - kxx.diag().sum()) / (n * (n - 1))
            + (kyy.sum() - kyy.diag().sum()) / (m * (m - 1)) - 2 * kxy.mean()).item()


def test_kid_is_the_unbiased_polynomial_mmd():
    real, fake = gaussian(60, [0, 0, 1, 2], [1, 1, 1, 1], 6), gaussian(60, [1, 0, 0, 0],
                                                                       [1, 2, 1, 1], 7)
    mean, std = kernel_distance(real, fake, subsets=1, subset_size=60, seed=0)
    assert mean == pytest.approx(unbiased_mmd(real, fake), rel=1e-9) and std == 0


def test_kid_is_unbiased_where_fid_is_not():
    """Two samples of one distribution, 50 each: KID's mean over draws is 0 within its
    Monte Carlo error; FID's is well above 0 (its bias at small n)."""
    kids, fids = [], []
    for seed in range(200):
        a, b = gaussian(50, [0] * 4, [1] * 4, 2 * seed), gaussian(50, [0] * 4, [1] * 4,
                                                                  2 * seed + 1)
        kids.append(kernel_distance(a, b, subsets=1, subset_size=50, seed=seed)[0])
        fids.append(frechet_distance(a, b))
    kids = np.array(kids)
    assert abs(kids.mean()) < 3 * kids.std(ddof=1) / np.sqrt(len(kids))
    assert np.mean(fids) > 10 * np.std(fids, ddof=1) / np.sqrt(len(fids))


def test_kid_subsets_are_drawn_from_the_seed():
    real, fake = gaussian(300, [0, 0], [1, 1], 8), gaussian(300, [0.5, 0], [1, 1], 9)
    torch.manual_seed(123)
    first = kernel_distance(real, fake, subsets=10, subset_size=100, seed=5)
    torch.manual_seed(456)  # the global generator plays no part
    assert kernel_distance(real, fake, subsets=10, subset_size=100, seed=5) == first
    assert kernel_distance(real, fake, subsets=10, subset_size=100, seed=6) != first
    values = quality(real, fake, ["fid", "kid"], kid_subsets=10, kid_subset_size=100, seed=5)
    assert values == {"fid": frechet_distance(real, fake), "kid": first[0],
                      "kid_std": first[1]}
    assert quality(real, fake, [], 10, 100, 5) == {}


def write_random_inception_weights(path):
    """A randomly initialised FID Inception network's weights, in torch-fidelity's format
    (its state_dict, as its released file holds): the real one cannot be downloaded here."""
    import torch_fidelity.feature_extractor_inceptionv3 as tf
    from torchmetrics.image.fid import NoTrainInceptionV3

    original_fetch, original_load = tf.load_state_dict_from_url, torch.nn.Module.load_state_dict
    tf.load_state_dict_from_url = lambda *args, **kwargs: {}
    torch.nn.Module.load_state_dict = lambda self, state, *a, **k: None
    try:
        torch.manual_seed(0)
        network = NoTrainInceptionV3(name="inception-v3-compat", features_list=["2048"])
    finally:
        tf.load_state_dict_from_url, torch.nn.Module.load_state_dict = original_fetch, \
            original_load
    torch.save(network.state_dict(), path)
    return network


@pytest.mark.slow  # builds Inception twice and runs it on 299 px images (about 10 s)
def test_inception_features_come_from_the_weights_file(tmp_path):
    from gansweep.quality.extractors import InceptionFeatures

    written = write_random_inception_weights(tmp_path / "weights.pth")
    features = InceptionFeatures(tmp_path / "weights.pth")
    assert all(torch.equal(a, b) for a, b in zip(features.network.state_dict().values(),
                                                  written.state_dict().values()))
    images = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    out = features(images)
    assert out.shape == (2, 2048) and torch.isfinite(out).all()


def test_missing_or_damaged_inception_weights_are_one_line(tmp_path):
    from gansweep.quality.extractors import INCEPTION_URL, InceptionFeatures

    with pytest.raises(GansweepError) as error:
        InceptionFeatures(tmp_path / "nowhere.pth")
    said = str(error.value)
    assert said == (f"no Inception weights at {tmp_path}/nowhere.pth: download {INCEPTION_URL} "
                    f"and put the file there (or give its path: "
                    f"quality.inception_weights=PATH; or measure no sample quality: "
                    f"quality.metrics=[])")
    (tmp_path / "torn.pth").write_bytes(b"PK\x03\x04 torn")
    with pytest.raises(GansweepError, match=r"torn.pth cannot be read \(not the FID Inception "
                                            r"weights .*download .* again"):
        InceptionFeatures(tmp_path / "torn.pth")


def test_the_digits_classifier_is_deterministic_and_learns_the_digits():
    from gansweep.data.digits import Digits
    from gansweep.quality.extractors import (ClassifierFeatures, accuracy,
                                             train_digits_classifier)

    digits = Digits(32, 3)
    images, labels = digits.tensors[0], digits.labels
    train, test = torch.arange(300, len(images)), torch.arange(300)
    first = train_digits_classifier(images[train], labels[train], seed=0, epochs=3)
    again = train_digits_classifier(images[train], labels[train], seed=0, epochs=3)
    assert all(torch.equal(a, b) for a, b in zip(first.state_dict().values(),
                                                  again.state_dict().values()))
    assert accuracy(first, images[test], labels[test]) > 0.9
    assert ClassifierFeatures(first)(images[:5]).shape == (5, 64)


QUALITY_ON = ["quality.metrics=[fid,kid]", "quality.every=3", "quality.n_samples=64",
              "quality.kid_subsets=5", "quality.kid_subset_size=32"]


@pytest.mark.slow  # trains the classifier (a few seconds) and a run
def test_a_run_writes_its_sample_quality(make_cfg):
    import csv
    import json

    from conftest import train_run
    from wandb_files import offline_runs

    run = train_run(make_cfg(*QUALITY_ON, "wandb.mode=offline"))
    with open(run / "quality.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    columns = ["fid[digits-classifier]", "kid[digits-classifier]",
               "kid_std[digits-classifier]"]
    assert list(rows[0]) == ["iter", *columns] and [r["iter"] for r in rows] == ["3", "6"]
    summary = json.loads((run / "summary.json").read_text())
    fids = [float(r[columns[0]]) for r in rows]
    assert summary["quality_features"] == "digits-classifier"
    assert summary["best_fid"] == pytest.approx(min(fids), rel=1e-6)
    assert summary["best_fid_iter"] == [3, 6][fids.index(min(fids))]
    assert summary["final_fid"] > 0 and summary["final_kid"] is not None
    (wb,) = offline_runs(run / "wandb")
    logged = wb.series(f"quality/{columns[0]}")
    assert [(i, pytest.approx(v, rel=1e-6)) for i, v in logged] == [(3, fids[0]), (6, fids[1])]


@pytest.mark.slow
def test_a_diverged_g_gives_no_quality_row_and_the_record_says_why(make_cfg):
    """G turns NaN after iteration 5; the divergence is read at 12, after the tests at 6
    and 9 met it: the running test says the run diverged at 6, and sample quality wrote
    no row for the NaN G (nor for any later one); the best checkpoint's final test still
    measures it."""
    import csv
    import json

    from conftest import PoisonGenerator, train_run

    run = train_run(make_cfg(*QUALITY_ON, "train.iters=12", "train.log_every=12"),
                    callbacks=[PoisonGenerator(5)])
    with open(run / "quality.csv", newline="") as f:
        assert [r["iter"] for r in csv.DictReader(f)] == ["3"]
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "diverged" and summary["diverged_at"] == 6
    assert summary["best_iter"] == 3 and summary["best_fid_iter"] == 3
    assert summary["final_fid"] > 0


@pytest.mark.slow  # trains the classifier twice (a few seconds each)
def test_the_real_features_are_cached_beside_the_split_and_never_stale(make_cfg, monkeypatch):
    from hydra.utils import instantiate

    from gansweep.quality import evaluation
    from gansweep.quality.evaluation import quality_settings

    cfg = make_cfg(*QUALITY_ON)
    data = instantiate(cfg.data)
    trained = []
    train = evaluation.train_digits_classifier
    monkeypatch.setattr(evaluation, "train_digits_classifier",
                        lambda *a, **k: trained.append(1) or train(*a, **k))
    first = evaluation.QualityTest(quality_settings(cfg.quality, cfg.dataset.name), data, seed=0)
    cache = data.split_path.with_name(f"{data.split_path.stem}.digits-classifier.pt")
    assert cache.exists() and len(trained) == 1
    again = evaluation.QualityTest(quality_settings(cfg.quality, cfg.dataset.name), data, seed=0)
    assert len(trained) == 1 and torch.equal(again.real, first.real)  # read back
    data.split_path.write_text(data.split_path.read_text() + " ")  # another split file
    evaluation.QualityTest(quality_settings(cfg.quality, cfg.dataset.name), data, seed=0)
    assert len(trained) == 2
    cache.write_bytes(b"torn")  # a damaged cache is made again, never an error
    evaluation.QualityTest(quality_settings(cfg.quality, cfg.dataset.name), data, seed=0)
    assert len(trained) == 3


def test_sample_quality_off_builds_nothing(make_cfg, tmp_path):
    from gansweep.run import run_callbacks

    callbacks = run_callbacks(make_cfg("quality.metrics=[]"), tmp_path / "run")
    assert callbacks.quality is None
    assert all(type(c).__name__ != "SampleQuality" for c in callbacks.in_order())


@pytest.mark.parametrize("bad", ["quality.metrics=[fid,fid]", "quality.metrics=[is]",
                                 "quality.extractor=vgg"])
def test_bad_quality_settings_are_one_line(make_cfg, bad):
    from gansweep.validate import validate

    with pytest.raises(GansweepError, match=f"^{bad.split('=')[0]}="):
        validate(make_cfg(bad))


def test_inception_without_its_weights_fails_before_anything_is_built(make_cfg, tmp_path):
    from gansweep.validate import validate

    with pytest.raises(GansweepError, match=f"no Inception weights at {tmp_path}/none.pth"):
        validate(make_cfg("quality.metrics=[fid]", "quality.extractor=inception",
                          f"quality.inception_weights={tmp_path}/none.pth"))


@pytest.mark.slow  # Inception twice on 299 px images (about 20 s)
def test_the_inception_check_agrees_with_torch_fidelity_on_cifar10_files(tmp_path, capsys):
    """`python -m gansweep.quality.check`: gansweep's FID and torch-fidelity's own pipeline
    on the same CIFAR-10 images (a fixture in the real on-disk format, read by torchvision),
    with the same weights file (random here: the real one cannot be downloaded)."""
    from gansweep.data.fakes import cifar10_checksums, write_cifar10
    from gansweep.quality.check import main

    write_random_inception_weights(tmp_path / "weights.pth")
    md5 = write_cifar10(tmp_path / "cifar", per_batch=12)
    with cifar10_checksums(md5):
        ours, theirs = main(["--weights", str(tmp_path / "weights.pth"), "--cifar10",
                             str(tmp_path / "cifar"), "--n", "12"])
    assert ours == pytest.approx(theirs, rel=1e-3) and ours > 0
    assert "they agree" in capsys.readouterr().out


def test_the_inception_check_without_data_or_weights_is_one_line(tmp_path):
    from gansweep.quality.check import main

    with pytest.raises(GansweepError, match=r"--cifar10 .*cifar-10-batches-py"):
        main(["--weights", str(tmp_path / "w.pth"), "--cifar10", str(tmp_path)])
