"""The settings gansweep's own code reads, each declared once: its default, its type and its
range. conf/config.yaml composes the defaults (the `settings` config below) and
`gansweep.validate` checks every declared setting against its type and range before anything
is built. A data set's values differ per data set, so they stay in conf/dataset/<name>.yaml
and only their types and ranges are declared here (`Dataset`)."""

from dataclasses import MISSING, dataclass, field
from typing import Any, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import OmegaConf

from gansweep.method.losses import LOSSES, PENALTIES
from gansweep.quality.extractors import EXTRACTORS
from gansweep.quality.metrics import METRICS
from gansweep.rundir.records import compared_results

COMPILE_MODES = ["default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs"]


def positive(default: Any = MISSING):
    return field(default=default, metadata={"range": "positive"})


def whole(default: Any = MISSING):
    """A count that may be 0."""
    return field(default=default, metadata={"range": "non_negative"})


def one_of(default: Any, choices: list):
    return field(default=default, metadata={"choices": choices})


def some_of(default: list, choices: list):
    """A list of distinct choices (none: the feature is off)."""
    return field(default_factory=lambda: list(default), metadata={"subset_of": choices})


def optimizer():
    # the paper's RMSProp, for D and G alike
    return {"_target_": "torch.optim.RMSprop", "_partial_": True, "lr": "${train.lr}",
            "alpha": 0.9, "eps": 1e-6}


@dataclass
class Train:
    iters: int = positive(2000)  # GAN iterations (one D step + one G step each); paper: 1e6
    batch_size: int = positive(32)  # the global batch, split over DDP processes
    lr: float = positive("${arch.lr}")  # the paper's for the architecture (DCGAN 1e-4, ResNet 2e-5)
    ckpt_every: int = positive(500)  # iterations between checkpoints/last.ckpt
    sample_every: int = positive(500)  # iterations between samples/iter_XXXXXX.png
    # Iterations between reads of the losses back from the device (train.csv rows, W&B points,
    # the progress bar, the divergence check, and under DDP the preemption signal): on a GPU
    # each read waits for the queued kernels. Never changes results: every iteration gets its
    # row, and a divergence stops the run at the iteration it happened.
    log_every: int = positive(50)
    # torch.compile of G and D for training (gansweep/training/gan.py): null (eager) or a mode.
    # Compiled kernels round differently, so it is part of a run's name; docs/benchmarks.md
    # says what it gains and costs.
    compile: Optional[str] = one_of(None, [None, *COMPILE_MODES])
    # The paper: "WN runs may fail in the first few iterations; a restart fixes it". A run
    # that diverges at this iteration or earlier starts over with a new seed, at most
    # max_restarts times; 0: never (gansweep/rundir/restarts.py).
    restart_on_early_divergence: int = whole(0)
    max_restarts: int = whole(3)
    optimizer: Any = field(default_factory=optimizer)  # built by Hydra, lr from train.lr
    # Several seeds in one job, packed into one network (gansweep/training/packed.py): e.g.
    # [0,1,2,3] trains seed=0..3 at once, each written as its own run. null: one run, of `seed`.
    seeds: Optional[list] = None


@dataclass
class Recon:
    """The paper's running test (gansweep/method/reconstruction.py, callbacks.RunningRecon)."""
    every: int = positive(250)  # iterations between tests; the paper: 1000
    n_images: int = positive(200)  # the first 200 held-out images, as in the paper
    steps: int = whole(50)  # RMSProp steps on z, from z = 0
    lr: float = positive(0.01)
    # images optimised together (null: 64 on CPU, all on GPU); never changes results, only
    # speed and memory
    chunk_size: Optional[int] = positive(None)


@dataclass
class Final:
    """The final test of checkpoints/best.ckpt when training ends."""
    # the whole held-out set (the paper: 2000, running set included)
    n_images: int = positive("${dataset.holdout}")
    steps: int = whole(500)  # the paper does not publish its count; see docs/method.md, "The metric"
    lr: float = positive("${recon.lr}")
    chunk_size: Optional[int] = positive("${recon.chunk_size}")


@dataclass
class Quality:
    """Sample quality (gansweep/quality, callbacks.SampleQuality): FID and KID of G's samples
    against the training images, in the extractor's features. The training images, as FID's
    definition has them (Heusel et al. computed the training set's statistics): the held-out
    ones are few (300 digits) and are the reconstruction test's."""
    # [] turns it off: nothing of it is built or imported
    metrics: list = some_of(["fid", "kid"], list(METRICS))
    # iterations between evaluations, also at the last one; the running test's, so that the
    # report can rank the two series over the same iterations
    every: int = positive("${recon.every}")
    n_samples: int = positive(1000)  # generated images (and real ones, up to the training set)
    # auto: the data set's (digits: digits-classifier; the others: inception)
    extractor: str = one_of("auto", ["auto", *EXTRACTORS])
    # the FID Inception network's weights; null: torch's hub cache, where torch-fidelity
    # puts them (gansweep/quality/extractors.py says where to download them)
    inception_weights: Optional[str] = None
    kid_subsets: int = positive(50)
    kid_subset_size: int = positive(500)


@dataclass
class Settings:
    seed: int = whole(0)  # the training seed: initialisation, codes, batch order
    # what a job returns to an optimisation sweeper, lower is better (gansweep/objective.py)
    objective: str = one_of("final_loss", [r.key for r in compared_results()])
    train: Train = field(default_factory=Train)
    recon: Recon = field(default_factory=Recon)
    final: Final = field(default_factory=Final)
    quality: Quality = field(default_factory=Quality)


@dataclass
class Dataset:
    """What every conf/dataset/<name>.yaml sets (no defaults: each data set has its own)."""
    name: str = MISSING
    image_size: int = positive()
    channels: int = positive()
    holdout: int = positive()  # held-out images: the final test set, the running set first
    split_seed: int = whole()  # seeds the split, independent of the training seed
    in_memory: bool = MISSING
    cache: bool = MISSING
    num_workers: int = whole()
    # only some data sets have these
    root: Optional[str] = None
    crop: Optional[int] = positive(None)
    download: Optional[bool] = None


@dataclass
class Loss:
    """conf/loss/<name>.yaml (gansweep/method/losses.py)."""
    name: str = one_of(MISSING, list(LOSSES))


@dataclass
class Penalty:
    """conf/penalty/<name>.yaml (gansweep/method/losses.py): `weight` times the penalty is added to
    D's loss; none has no weight."""
    name: str = one_of(MISSING, PENALTIES)
    weight: Optional[float] = positive(None)


# Composed as plain values, not as a typed node: a wrong type on the command line then
# reaches gansweep.validate's one-line message instead of Hydra's composition error.
ConfigStore.instance().store(name="settings",
                             node=OmegaConf.to_container(OmegaConf.structured(Settings)))
