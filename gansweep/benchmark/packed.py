"""K seeds of one grid point trained as one packed network against K networks apart.

    python -m gansweep.benchmark packed            # K = 1, 2, 4, 8; digits and DCGAN-64
    python -m gansweep.benchmark packed --quick    # fewer iterations and repeats

For each setting, norm and K it times, in one process, interleaved and repeated (medians),
a GAN iteration (a D step on a real and a fake batch, a G step with D frozen, RMSProp) of
- apart: K copies of G and D, each with its own optimisers, one after another;
- packed: the K copies packed (`gansweep.training.stacking.Packed`), one RMSProp per network
  over the stacked parameters, each copy's loss its own batch mean (their sum is what is
  derived, so each copy gets the gradient it would get alone);
and reports model-iterations per second (K / seconds per iteration) of both, and the peak
memory one packed iteration adds (torch's allocator peak on a GPU, the process's peak
resident set on a CPU: an upper bound). Batches are random images of the run's size: the
data pipeline is `benchmark data`'s subject.
"""

from __future__ import annotations

import statistics
import time

import torch
from hydra.utils import instantiate

from gansweep.benchmark.common import device_name, root_config, synchronize
from gansweep.benchmark.memory import MIB
from gansweep.benchmark.train import SETTINGS
from gansweep.cli import positive_int
from gansweep.method.losses import batch_loss
from gansweep.method.norms import VARIANTS
from gansweep.training.capacity import Peak
from gansweep.training.stacking import Packed

NORMS = ["vanilla", "bn", "wn"]
COPIES = [1, 2, 4, 8]
BATCH = 32
PLANS = {False: (4, 5), True: (2, 3)}  # quick -> (iterations timed per repeat, repeats)


def networks(setting: str, norm: str, copies: int):
    """`copies` G, D and their optimisers as a run of `setting` builds them, seeds 0.."""
    cfg = root_config(f"norm={norm}", *SETTINGS[setting])
    models = []
    for seed in range(copies):
        torch.manual_seed(seed)
        models.append(instantiate(cfg.model, seed=seed))
    return cfg, models


def gan_iteration(G, D, opt_d, opt_g, real, codes) -> None:
    """One GAN iteration; with a leading copies dimension each copy's loss is its batch's
    mean, and the copies' losses are summed."""
    def loss(logits, target):
        return batch_loss(logits, target).sum()

    d_real, d_fake = D(real), D(G(codes[0]).detach())
    opt_d.zero_grad(set_to_none=True)
    (loss(d_real, 1.0) + loss(d_fake, 0.0)).backward()
    opt_d.step()
    D.requires_grad_(False)
    opt_g.zero_grad(set_to_none=True)
    loss(D(G(codes[1])), 1.0).backward()
    opt_g.step()
    D.requires_grad_(True)


def measure(setting: str, norm: str, copies: int, quick: bool) -> dict:
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    cfg, models = networks(setting, norm, copies)
    size, code_dim = cfg.dataset.image_size, models[0].generator.code_dim
    apart = []
    for model in models:
        model.to(device)
        apart.append((model.generator, model.discriminator, *model.configure_optimizers()))
    G = Packed([m.generator for m in models]).to(device)
    D = Packed([m.discriminator for m in models]).to(device)
    make = instantiate(cfg.train.optimizer)  # the run's RMSProp, over the stacks
    opt_d, opt_g = make(D.parameters()), make(G.parameters())
    real = torch.rand(copies, BATCH, cfg.dataset.channels, size, size, device=device)
    codes = torch.randn(2, copies, BATCH, code_dim, device=device)

    def packed():
        gan_iteration(G, D, opt_d, opt_g, real, codes)

    def one_by_one():
        for k, (g, d, od, og) in enumerate(apart):
            gan_iteration(g, d, od, og, real[k], codes[:, k])

    steps, repeats = PLANS[quick]
    times = {"packed": [], "apart": []}
    packed(), one_by_one()  # warm-up: optimiser state, allocator
    with Peak() as peak:
        packed()
    for _ in range(repeats):  # interleaved, so drifts in machine speed hit both alike
        for name, fn in (("packed", packed), ("apart", one_by_one)):
            synchronize()
            start = time.perf_counter()
            for _ in range(steps):
                fn()
            synchronize()
            times[name].append((time.perf_counter() - start) / steps)
    packed_s, apart_s = statistics.median(times["packed"]), statistics.median(times["apart"])
    return {"setting": setting, "norm": norm, "copies": copies, "packed_s": packed_s,
            "apart_s": apart_s, "packed_models_per_s": copies / packed_s,
            "apart_models_per_s": copies / apart_s, "packed_peak_mib": peak.bytes / MIB}


def run(args) -> list[dict]:
    return [measure(setting, norm, copies, args.quick) for setting in args.settings
            for norm in args.norms for copies in args.copies]


def add_arguments(parser) -> None:
    parser.add_argument("--quick", action="store_true", help="fewer iterations and repeats")
    parser.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    parser.add_argument("--norms", nargs="+", default=NORMS, choices=sorted(VARIANTS))
    parser.add_argument("--copies", nargs="+", type=positive_int, default=COPIES,
                        help="K: seeds packed into one network")


def report(rows: list[dict], args) -> None:
    print(f"K seeds packed into one network vs K networks apart, batch 32, on {device_name()}"
          f"{' (quick)' if args.quick else ''}; medians of interleaved repeats:")
    print("| setting | norm | K | apart model-it/s | packed model-it/s | packed / apart | "
          "packed vs K=1 packed | packed peak MiB |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        one = next((o for o in rows if (o["setting"], o["norm"], o["copies"]) ==
                    (r["setting"], r["norm"], 1)), None)
        scale = f"{r['packed_models_per_s'] / one['packed_models_per_s']:.2f}x" if one else "-"
        print(f"| {r['setting']} | {r['norm']} | {r['copies']} | "
              f"{r['apart_models_per_s']:.1f} | {r['packed_models_per_s']:.1f} | "
              f"{r['packed_models_per_s'] / r['apart_models_per_s']:.2f} | {scale} | "
              f"{r['packed_peak_mib']:.0f} |")
