"""Checks gansweep's Inception FID against torch-fidelity's, with your weights file:
`python -m gansweep.quality.check --weights FILE --cifar10 DIR [--n 2000]`.

gansweep extracts Inception features itself (so that the real images' features can be
cached; gansweep/quality/extractors.py) and computes FID through torchmetrics. This runs
torch-fidelity's own pipeline, its Inception, its statistics and its FID, on the same two
image sets, CIFAR-10's first `--n` training and test images (torchvision's loader, from
`<DIR>/cifar-10-batches-py`), and prints both numbers. They should agree to float rounding:
a difference says the weights, the resizing or the formula differ. The suite cannot run it
with the real weights (none can be downloaded there); it runs it with a randomly initialised
network saved in torch-fidelity's format.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from gansweep.cli import positive_int, run_command
from gansweep.errors import GansweepError

AGREE = 1e-3  # relative difference within which the two FIDs agree


def cifar10_images(root: Path, train: bool, n: int) -> torch.Tensor:
    """The first `n` images of CIFAR-10's training or test set, (n, 3, 32, 32) uint8."""
    from torchvision.datasets import CIFAR10

    try:
        data = CIFAR10(str(root), train=train, download=False)
    except RuntimeError as error:  # torchvision: "Dataset not found or corrupted"
        raise GansweepError(f"--cifar10 {root}: {error} (it needs "
                            f"{root}/cifar-10-batches-py, the python version from "
                            f"https://www.cs.toronto.edu/~kriz/cifar.html)") from None
    return torch.from_numpy(data.data[:n]).permute(0, 3, 1, 2).contiguous()


class Images(torch.utils.data.Dataset):
    """uint8 images as torch-fidelity takes a data set."""

    def __init__(self, images: torch.Tensor):
        self.images = images

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.images[i]


def gansweeps_fid(weights: Path, real: torch.Tensor, fake: torch.Tensor) -> float:
    from gansweep.quality.evaluation import features_of
    from gansweep.quality.extractors import InceptionFeatures
    from gansweep.quality.metrics import frechet_distance

    network = InceptionFeatures(weights)
    return frechet_distance(features_of(network, real.float() / 255),
                            features_of(network, fake.float() / 255))


def torch_fidelitys_fid(weights: Path, real: torch.Tensor, fake: torch.Tensor) -> float:
    import torch_fidelity

    metrics = torch_fidelity.calculate_metrics(
        input1=Images(real), input2=Images(fake), fid=True, cuda=torch.cuda.is_available(),
        cache=False, verbose=False, feature_extractor="inception-v3-compat",
        feature_extractor_weights_path=str(weights))
    return float(metrics["frechet_inception_distance"])


def check(weights: Path, real: torch.Tensor, fake: torch.Tensor) -> tuple[float, float]:
    """(gansweep's FID, torch-fidelity's FID) of two uint8 image sets."""
    from gansweep.quality.extractors import check_inception_weights

    weights = check_inception_weights(weights)
    return gansweeps_fid(weights, real, fake), torch_fidelitys_fid(weights, real, fake)


def main(argv: list[str] | None = None) -> tuple[float, float]:
    parser = argparse.ArgumentParser(prog="python -m gansweep.quality.check",
                                     description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", type=Path, required=True,
                        help="the FID Inception weights file (torch-fidelity's)")
    parser.add_argument("--cifar10", type=Path, required=True,
                        help="the folder holding cifar-10-batches-py")
    parser.add_argument("--n", type=positive_int, default=2000,
                        help="images from each set (default 2000)")
    args = parser.parse_args(argv)
    real = cifar10_images(args.cifar10, True, args.n)
    fake = cifar10_images(args.cifar10, False, args.n)
    ours, theirs = check(args.weights, real, fake)
    agree = abs(ours - theirs) <= AGREE * max(abs(theirs), 1e-12)
    print(f"FID of CIFAR-10's first {len(real)} training vs {len(fake)} test images: "
          f"gansweep {ours:.4f}, torch-fidelity {theirs:.4f}: "
          + ("they agree" if agree else "they DIFFER"))
    if not agree:
        raise SystemExit(1)
    return ours, theirs


if __name__ == "__main__":
    run_command(main)
