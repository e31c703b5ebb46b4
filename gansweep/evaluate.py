"""Re-evaluate any run: `python -m gansweep.evaluate RUN_DIR [--checkpoint best|last|PATH]`.

Loads a checkpoint's G, reconstructs the run's own held-out images (its `split.json`) with
the paper's protocol, prints the error and writes `eval/<name>.json` and `eval/<name>.png`
(targets on odd rows, their reconstructions below them); with `--quality`, the FID/KID of
its G's samples as the run measured them. Training's final test uses the same functions. A
checkpoint of other networks than the run's is refused; one of the same networks from
elsewhere (another seed's, a copy) is named for where it came from (`evaluation_name`).
"""

from __future__ import annotations

import argparse
import hashlib
import os
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf
from torchvision.utils import save_image

from gansweep.cli import non_negative_int, positive_float, positive_int, run_command
from gansweep.errors import GansweepError, build
from gansweep.method.reconstruction import ReconSettings, Reconstruction, reconstruct
from gansweep.rundir import records
from gansweep.training.gan import GAN, differing_networks


def load_generator(checkpoint: str | Path) -> tuple[torch.nn.Module, int]:
    """(G in eval mode, the GAN iteration it was saved at) from a gansweep checkpoint."""
    records.read_checkpoint(checkpoint)  # a damaged file: one line naming it, not torch's
    module = GAN.load_from_checkpoint(checkpoint, map_location="cpu", weights_only=False)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    return module.generator.to(device).eval(), module.iteration


def run_data(run_dir: Path, cfg: DictConfig):
    """The run's data set on its own split (`cfg`: the run's config.yaml)."""
    cfg.data.split_path = str(run_dir / "split.json")
    return build(cfg.data)


def heldout_images(data, n_images: int | None) -> torch.Tensor:
    """The run's first `n_images` held-out images (all of them if None)."""
    if n_images is not None and n_images > data.split.holdout:
        raise GansweepError(f"--n-images {n_images}: the run holds out only "
                            f"{data.split.holdout} images; give at most that many")
    return data.heldout_images(n_images or data.split.holdout)


def save_comparison(images: torch.Tensor, rec: Reconstruction, path: Path, n: int = 32) -> None:
    """Rows of 8 targets, each followed by the row of their reconstructions."""
    targets, fakes = images[:n].cpu(), rec.images[:n].cpu()
    rows = [t for start in range(0, len(targets), 8)
            for t in (targets[start:start + 8], fakes[start:start + 8])]
    path.parent.mkdir(parents=True, exist_ok=True)
    save_image(torch.cat(rows), path, nrow=8, padding=2, pad_value=0.5)


def resolve_checkpoint(run_dir: Path, checkpoint: str) -> Path:
    path = run_dir / "checkpoints" / f"{checkpoint}.ckpt" if checkpoint in ("best", "last") \
        else Path(checkpoint)
    if not path.exists():
        raise GansweepError(
            f"no checkpoint at {path}; a run has checkpoints/best.ckpt once its first running "
            f"test is done and checkpoints/last.ckpt every train.ckpt_every iterations"
        )
    return path


def check_same_networks(checkpoint: Path, run_dir: Path, cfg: DictConfig) -> None:
    """The run's held-out images and records are only for a G of the run's own networks."""
    saved = records.read_checkpoint(checkpoint)["hyper_parameters"]
    differs = differing_networks(saved, OmegaConf.to_container(cfg.model, resolve=True))
    if differs:
        raise GansweepError(
            f"{checkpoint} holds a model with {differs[0]}, but the run {run_dir} trained "
            f"{differs[1]}: evaluate a checkpoint with its own run (python -m "
            f"gansweep.evaluate <its run directory> --checkpoint ...)")


def evaluation_name(run_dir: Path, checkpoint: Path, n_images: int, steps: int) -> str:
    """`<checkpoint>-n<N>-s<steps>`: the checkpoint by its place in the run (`best`,
    `restarts-0-best` for an attempt given up), or one from outside the run by its own run's
    name and a digest of its path, so that it never takes the name of the run's own."""
    path = checkpoint.resolve()
    try:
        within = path.relative_to(Path(run_dir).resolve()).with_suffix("")
        label = "-".join(p for p in within.parts if p != "checkpoints")
    except ValueError:
        owner = path.parent.parent.name if path.parent.name == "checkpoints" else \
            path.parent.name
        digest = hashlib.sha1(str(path).encode()).hexdigest()[:8]
        label = f"other-{owner}-{path.stem}-{digest}"
    return f"{label}-n{n_images}-s{steps}"


def kernels_like_training(cfg: DictConfig) -> None:
    """The run's `trainer.deterministic` (`cfg`: its config.yaml), so that on a GPU a
    re-evaluation repeats the run's final test bit for bit (as Lightning sets it for
    training; runs from before the key were trained without it)."""
    deterministic = bool(OmegaConf.select(cfg, "trainer.deterministic", default=False))
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # before any cuBLAS call
    torch.use_deterministic_algorithms(deterministic)


def evaluate_run(run_dir: str | Path, checkpoint: str = "best", n_images: int | None = None,
                 settings: ReconSettings = ReconSettings(), progress: str | None = None,
                 quality: bool = False) -> dict:
    """Re-evaluates a run's checkpoint (`progress`: a progress bar's label, None: none);
    with `quality`, its sample quality too, as the run measured it (`sample_quality`)."""
    run_dir = Path(run_dir)
    path = resolve_checkpoint(run_dir, checkpoint)
    cfg = records.read_config(run_dir)
    check_same_networks(path, run_dir, cfg)
    kernels_like_training(cfg)
    generator, iteration = load_generator(path)
    data = run_data(run_dir, cfg)
    images = heldout_images(data, n_images)
    rec = reconstruct(generator, images, settings, progress)
    name = evaluation_name(run_dir, path, len(images), settings.steps)
    result = {**records.identity(cfg), "checkpoint": str(path), "iteration": iteration,
              "n_images": len(images), "steps": settings.steps, "lr": settings.lr,
              "recon_mse": rec.mean}
    if quality:
        result.update(sample_quality(data, cfg, generator))
        name += "-quality"
    records.write_evaluation(run_dir, name, result)
    save_comparison(images, rec, run_dir / "eval" / f"{name}.png")
    return result


def sample_quality(data, cfg: DictConfig, generator: torch.nn.Module) -> dict:
    """FID/KID of G (`{"fid[<features>]": ...}`) by the run's quality settings against the
    training images of its data (`run_data`); the shipped defaults for a run from before
    them, or one trained with `quality.metrics=[]`."""
    from gansweep.quality.evaluation import QualityTest, quality_settings
    from gansweep.settings import Quality

    node = OmegaConf.merge(OmegaConf.structured(Quality), cfg.get("quality") or {})
    if not node.metrics:
        node.metrics = Quality().metrics
    values = QualityTest(quality_settings(node, cfg.dataset.name), data, cfg.seed)(generator)
    if values is None:
        raise GansweepError("G of this checkpoint gives non-finite samples (it diverged): "
                            "no sample quality to measure")
    return values


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m gansweep.evaluate", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir", type=Path, help="a run directory (holds config.yaml)")
    parser.add_argument("--checkpoint", default="best", help="best, last, or a .ckpt path")
    parser.add_argument("--n-images", type=positive_int, default=None,
                        help="first N held-out images (default: all of the final set)")
    parser.add_argument("--steps", type=non_negative_int, default=ReconSettings.steps)
    parser.add_argument("--lr", type=positive_float, default=ReconSettings.lr)
    parser.add_argument("--chunk-size", type=positive_int, default=ReconSettings.chunk_size)
    parser.add_argument("--quality", action="store_true",
                        help="also FID/KID of G's samples, by the run's quality settings")
    args = parser.parse_args(argv)
    if not (args.run_dir / "config.yaml").exists():
        parser.error(f"{args.run_dir} is not a gansweep run directory (no config.yaml)")
    settings = ReconSettings(steps=args.steps, lr=args.lr, chunk_size=args.chunk_size)
    result = evaluate_run(args.run_dir, args.checkpoint, args.n_images, settings,
                          progress="reconstructing", quality=args.quality)
    measured = "".join(f", {k} {v:.4g}" for k, v in result.items() if "[" in k)
    print(f"{result['checkpoint']} (iteration {result['iteration']}): reconstruction error "
          f"{result['recon_mse']:.6f} on {result['n_images']} held-out images, "
          f"{result['steps']} steps{measured}; grid and json in {args.run_dir / 'eval'}")
    return result


if __name__ == "__main__":
    run_command(main)
