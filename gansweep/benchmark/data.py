"""Each data set's loader against the training step.

    python -m gansweep.benchmark data

Writes a small fake of each data set in its real on-disk format (`gansweep.data.fakes`),
loads it through the data set's real config (workers, in-memory, decoded-image cache) and
reports the loader's images/s next to the training step's images/s at batch 32 with that
data set's architecture settings: a ratio above 1 means the loader keeps up. Data sets
served from the cache by default are also timed decoding every image (`dataset.cache=false`);
the one-off build of the cache is outside the timing.
"""

from __future__ import annotations

import gc
import tempfile
import time
from contextlib import nullcontext
from pathlib import Path

from hydra.utils import instantiate

from gansweep.benchmark.common import device_name, root_config, training_iteration_time
from gansweep.cli import at_least, positive_float
from gansweep.data import fakes
from gansweep.errors import build
from gansweep.method.reconstruction import PAPER_BATCH

HOLDOUT = 100  # each fake's held-out images; the rest must hold a training batch
DATASETS = ["digits", "mnist", "cifar10", "celeba", "lsun_bedroom"]  # those with a fake


def run(args) -> list[dict]:
    writers = {"celeba": lambda r: fakes.write_celeba(r, n=args.images),
               "lsun_bedroom": lambda r: fakes.write_lsun_bedroom(r, n=args.images),
               "cifar10": lambda r: fakes.write_cifar10(r, per_batch=args.images // 6),
               "mnist": lambda r: fakes.write_mnist(r, args.images - HOLDOUT, HOLDOUT)}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.datasets:
            root = f"{tmp}/{name}"
            written = writers[name](Path(root)) if name in writers else None
            checks = fakes.cifar10_checksums(written) if name == "cifar10" else nullcontext()
            where = [f"dataset.root={root}"] if name in writers else []  # digits ships
            base = root_config(f"dataset={name}")
            train_rate = None
            for cache in ([False, True] if base.dataset.cache else [False]):
                cfg = root_config(
                    f"dataset={name}", *where, f"dataset.holdout={HOLDOUT}",
                    f"dataset.cache={cache}", f"paths.output_dir={tmp}", f"run_dir={tmp}/run", "train.iters=1000000")
                with checks:
                    data = build(cfg.data)
                loader_rate = _images_per_second(data.train_dataloader(), args.seconds)
                workers = data.num_workers  # 0 for decoded images, whatever the config says
                del data  # LSUN's lmdb may be open once per process
                gc.collect()
                if train_rate is None:
                    model = instantiate(cfg.model)
                    train_rate = PAPER_BATCH / training_iteration_time(model, None)
                rows.append({"dataset": name, "image_size": cfg.dataset.image_size,
                             "workers": workers, "in_memory": cfg.data.in_memory,
                             "cache": cache, "loader_images_s": loader_rate,
                             "train_images_s": train_rate, "ratio": loader_rate / train_rate})
    return rows


def _images_per_second(loader, seconds: float) -> float:
    """Batches for about `seconds` after the first (workers started, first batch in)."""
    batches = iter(loader)
    next(batches)
    n, start = 0, time.perf_counter()
    for batch in batches:
        n += len(batch[0])
        if time.perf_counter() - start > seconds:
            break
    return n / (time.perf_counter() - start)


def add_arguments(parser) -> None:
    parser.add_argument("--datasets", nargs="+", default=DATASETS, choices=DATASETS)
    fewest = HOLDOUT + PAPER_BATCH
    parser.add_argument("--images", type=at_least(int, fewest, False, f"a whole number >= "
                                                  f"{fewest} ({HOLDOUT} held out and a batch)"),
                        default=612, help="images in each fake data set")
    parser.add_argument("--seconds", type=positive_float, default=3.0, help="loading time per row")


def report(rows: list[dict], args) -> None:
    print(f"loader vs training step (batch {PAPER_BATCH}), on {device_name()}:")
    print("| dataset | px | workers | in memory | cache | loader img/s | train img/s | ratio |")
    print("|---|---|---|---|---|---|---|---|")
    yes = {True: "yes", False: ""}
    for r in rows:
        print(f"| {r['dataset']} | {r['image_size']} | {r['workers']} | {yes[r['in_memory']]} | "
              f"{yes[r['cache']]} | "
              f"{r['loader_images_s']:.0f} | {r['train_images_s']:.0f} | {r['ratio']:.1f} |")
