"""What evaluation costs a run: the running test, sample quality (each metric), the final test.

    python -m gansweep.benchmark quality

On the default run's networks and data (the shipped digits; `--dataset` and overrides for
others), it times one GAN iteration, one running test (`recon.*`), one sample-quality test
per metric alone and both together (`quality.*`), the one-off build of the real images'
features (the digits classifier's training included), and the final test (`final.*`,
extrapolated from `--final-steps` since its cost is linear in its steps). From these it
states each part's share of a run's time at the default schedule (the config's
`train.iters`, `recon.every`, `quality.every`) and at the paper's (a test every 1,000
iterations, over 100,000 iterations: the shares of a long run, where the one-off costs
vanish). Each evaluation happens at every `every` iterations and at the last one.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import replace

import torch
from hydra.utils import instantiate

from gansweep.benchmark.common import device_name, root_config, timed, training_iteration_time
from gansweep.cli import positive_int
from gansweep.method.reconstruction import reconstruct
from gansweep.quality.evaluation import QualityTest, quality_settings
from gansweep.run import recon_settings
from gansweep.validate import validate

PAPERS_EVERY, PAPERS_ITERS = 1000, 100_000


def tests_in(iters: int, every: int) -> int:
    """Evaluations in a run: every `every` iterations, and at the last one."""
    return iters // every + (iters % every != 0)


def shares(costs: dict[str, float], counts: dict[str, int]) -> dict[str, float]:
    """Each part's share of the run's time (`costs`: seconds per occurrence)."""
    total = sum(costs[k] * counts[k] for k in costs)
    return {k: costs[k] * counts[k] / total for k in costs}


def run(args) -> dict:
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        cfg = root_config(f"dataset={args.dataset}", f"paths.output_dir={tmp}",
                          f"run_dir={tmp}/run", *args.overrides)
        validate(cfg)
        gan = instantiate(cfg.model)
        device = "cuda" if torch.cuda.is_available() else "cpu"
        t_iter = training_iteration_time(gan, device)
        g = gan.generator.to(device)
        data = instantiate(cfg.data)
        images = data.heldout_images(cfg.recon.n_images).to(device)
        t_recon = timed(lambda: reconstruct(g, images, recon_settings(cfg.recon)), args.repeat)
        final = recon_settings(cfg.final)
        final_images = data.heldout_images(cfg.final.n_images).to(device)
        short = replace(final, steps=args.final_steps)
        t_final = timed(lambda: reconstruct(g, final_images, short)) * final.steps \
            / args.final_steps
        settings = quality_settings(cfg.quality, cfg.dataset.name)
        t_build = first_build(settings, data, cfg.seed)
        per_metric = {}
        for metric in settings.metrics:
            test = QualityTest(replace(settings, metrics=(metric,)), data, cfg.seed)
            per_metric[metric] = timed(lambda: test(g), args.repeat)
        both = QualityTest(settings, data, cfg.seed)
        t_quality = timed(lambda: both(g), args.repeat)
    iters, recon_every, quality_every = cfg.train.iters, cfg.recon.every, cfg.quality.every
    costs = {"training": t_iter, "running test": t_recon, "sample quality": t_quality,
             "final test": t_final, "quality set-up": t_build}
    default = shares(costs, {"training": iters, "running test": tests_in(iters, recon_every),
                             "sample quality": tests_in(iters, quality_every),
                             "final test": 1, "quality set-up": 1})
    paper = shares(costs, {"training": PAPERS_ITERS,
                           "running test": tests_in(PAPERS_ITERS, PAPERS_EVERY),
                           "sample quality": tests_in(PAPERS_ITERS, PAPERS_EVERY),
                           "final test": 1, "quality set-up": 1})
    return {"device": device_name(),
            "setting": f"{cfg.norm.name} {cfg.arch.name} on {cfg.dataset.name}, "
                       f"{settings.n_samples} samples in {settings.extractor} features",
            "seconds": costs, "per_metric_s": per_metric,
            "default_schedule": {"iters": iters, "recon_every": recon_every,
                                 "quality_every": quality_every, "shares": default},
            "papers_schedule": {"iters": PAPERS_ITERS, "every": PAPERS_EVERY,
                                "shares": paper}}


def first_build(settings, data, seed: int) -> float:
    """Seconds to build the real images' features the first time (nothing cached yet)."""
    start = time.perf_counter()
    QualityTest(settings, data, seed)
    return time.perf_counter() - start


def add_arguments(parser) -> None:
    parser.add_argument("--dataset", default="digits")
    parser.add_argument("--final-steps", type=positive_int, default=20,
                        help="final-test steps timed (its cost is linear in them)")
    parser.add_argument("--repeat", type=positive_int, default=1)
    parser.add_argument("overrides", nargs="*", help="config overrides, e.g. quality.n_samples=500")


def report(result: dict, args) -> None:
    s = result["seconds"]
    print(f"evaluation benchmark on {result['device']}: {result['setting']}")
    print(f"  per GAN iteration {s['training'] * 1000:.1f} ms; running test {s['running test']:.2f} s; "
          f"sample quality {s['sample quality']:.2f} s ("
          + ", ".join(f"{m} alone {t:.2f} s" for m, t in result["per_metric_s"].items())
          + f"); its one-off set-up {s['quality set-up']:.2f} s; final test "
          f"{s['final test']:.1f} s")
    d, p = result["default_schedule"], result["papers_schedule"]
    for name, schedule, detail in (
            ("default", d, f"{d['iters']} iterations, running test every {d['recon_every']}, "
                           f"sample quality every {d['quality_every']}"),
            ("paper's", p, f"{p['iters']:,} iterations, both every {p['every']}")):
        parts = ", ".join(f"{k} {100 * v:.1f}%" for k, v in schedule["shares"].items())
        print(f"  share of a run at the {name} schedule ({detail}): {parts}")
