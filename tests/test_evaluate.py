"""`python -m gansweep.evaluate RUN_DIR`: re-evaluating a finished run's checkpoints."""

import json

import pytest
import torch
from PIL import Image

from gansweep.errors import GansweepError
from gansweep.evaluate import main
from conftest import train_run


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    from conftest import compose_config

    return train_run(compose_config(tmp_path_factory.mktemp("evaluate")))


def test_reevaluating_best_reproduces_the_final_test(run, capsys):
    summary = json.loads((run / "summary.json").read_text())
    result = main([str(run), "--n-images", "16", "--steps", "10"])
    assert result["iteration"] == summary["best_iter"]
    assert result["recon_mse"] == pytest.approx(summary["final_loss"], rel=1e-5)
    assert f"{result['recon_mse']:.6f}" in capsys.readouterr().out
    grid = Image.open(run / "eval" / "best-n16-s10.png")
    assert grid.size == (8 * 34 + 2, 4 * 34 + 2)  # 16 images: 2 rows of targets + 2 of recons
    assert json.loads((run / "eval" / "best-n16-s10.json").read_text()) == result


def test_more_steps_reconstruct_better(run):
    few = main([str(run), "--checkpoint", "last", "--n-images", "8", "--steps", "2"])
    many = main([str(run), "--checkpoint", "last", "--n-images", "8", "--steps", "40"])
    assert few["iteration"] == many["iteration"] == 6
    assert many["recon_mse"] < few["recon_mse"]


def test_checkpoint_by_path_and_default_image_count(run):
    path = run / "checkpoints" / "last.ckpt"
    result = main([str(run), "--checkpoint", str(path), "--steps", "1"])
    assert result["checkpoint"] == str(path) and result["n_images"] == 300  # the holdout


def test_clear_errors_for_a_wrong_directory_or_checkpoint(run, tmp_path, capsys):
    with pytest.raises(SystemExit):
        main([str(tmp_path)])
    assert "not a gansweep run directory" in capsys.readouterr().err
    with pytest.raises(GansweepError, match="no checkpoint at"):
        main([str(run), "--checkpoint", str(tmp_path / "nope.ckpt")])


def test_reevaluation_uses_the_runs_deterministic_setting(run):
    # A GPU re-evaluation repeats the final test bit for bit only with the kernels it ran with.
    config = run / "config.yaml"
    text = config.read_text()
    assert "deterministic: true" in text
    before = torch.are_deterministic_algorithms_enabled()
    try:
        torch.use_deterministic_algorithms(False)
        main([str(run), "--n-images", "4", "--steps", "1"])
        assert torch.are_deterministic_algorithms_enabled()
        config.write_text(text.replace("deterministic: true", "deterministic: false"))
        main([str(run), "--n-images", "4", "--steps", "1"])
        assert not torch.are_deterministic_algorithms_enabled()
    finally:
        config.write_text(text)
        torch.use_deterministic_algorithms(before)


@pytest.mark.slow
def test_a_checkpoint_of_another_run_never_overwrites_the_runs_own_evaluation(run, tmp_path):
    """Another norm's checkpoint is refused; the same networks' from another run (another
    seed) are evaluated on this run's images under a name that says where they came from."""
    from conftest import compose_config

    bn = train_run(compose_config(tmp_path, "norm=bn", f"run_dir={tmp_path}/bn"))
    other_seed = train_run(compose_config(tmp_path, "seed=1", f"run_dir={tmp_path}/seed1"))
    own = main([str(run), "--n-images", "8", "--steps", "1"])
    before = {p.name: p.read_bytes() for p in (run / "eval").iterdir()}
    with pytest.raises(GansweepError, match=r"best.ckpt holds a model with norm='bn', but the "
                                            r"run .* trained norm='wn': evaluate a checkpoint "
                                            r"with its own run"):
        main([str(run), "--checkpoint", str(bn / "checkpoints" / "best.ckpt")])
    foreign = main([str(run), "--checkpoint", str(other_seed / "checkpoints" / "best.ckpt"),
                    "--n-images", "8", "--steps", "1"])
    written = {p.name for p in (run / "eval").iterdir()} - set(before)
    assert len(written) == 2 and all(n.startswith("other-seed1-best-") for n in written)
    assert {p.name: p.read_bytes() for p in (run / "eval").iterdir() if p.name in before} \
        == before
    assert foreign["recon_mse"] != own["recon_mse"]


@pytest.mark.slow  # a run with sample quality on (its classifier trains in about 2 s)
def test_reevaluating_with_quality_reproduces_the_final_tests_fid_and_kid(tmp_path, capsys):
    from conftest import compose_config

    run = train_run(compose_config(tmp_path, "quality.metrics=[fid,kid]",
                                   "quality.n_samples=200", "quality.kid_subset_size=100"))
    summary = json.loads((run / "summary.json").read_text())
    result = main([str(run), "--n-images", "16", "--steps", "10", "--quality"])
    features = summary["quality_features"]
    assert result[f"fid[{features}]"] == pytest.approx(summary["final_fid"], rel=1e-6)
    assert result[f"kid[{features}]"] == pytest.approx(summary["final_kid"], rel=1e-6)
    assert f"fid[{features}] {result[f'fid[{features}]']:.4g}" in capsys.readouterr().out
    assert json.loads((run / "eval" / "best-n16-s10-quality.json").read_text()) == result
