"""Speed figures the README quotes, measured as ratios within one run (machines are noisy).

    python -m gansweep.benchmark recon      # the batched evaluator vs the paper's loop
    python -m gansweep.benchmark data       # each data set's loader vs the training step

`recon` compares, on the same G, images and steps:
- paper: the authors' loop: batches of 32, each optimised for all steps, with G's parameter
  gradients computed too (Torch7's `backward` computes both);
- batched: `gansweep.recon.reconstruct` (all images at once, G frozen);
- floor: steps x (one forward + backward of the frozen G over all images), no optimiser;
- training: GAN iterations at batch 32 (the paper's), to put the running test's cost (one
  test every `--every` iterations) next to the training it interrupts.
Per-step costs are linear in the number of steps, so `--steps` below 50 gives the same ratios
faster; the figures for 50 steps are extrapolated and labelled so.

`data` writes a small fake of each data set in its real on-disk format
(`gansweep.data.fakes`), loads it through the data set's real config (workers, in-memory)
and reports the loader's images/s next to the training step's images/s at batch 32 with that
data set's architecture settings: a ratio above 1 means the loader keeps up.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from gansweep.gan import GAN
from gansweep.recon import PAPER_BATCH, ReconSettings, frozen, reconstruct


def timed(fn, repeat: int = 1) -> float:
    """Best wall time of `repeat` calls (after one warm-up call), in seconds."""
    fn()
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    return best


def paper_loop(generator, images, steps):
    """The authors' protocol as they ran it: batches of 32, parameter gradients included."""
    was_training = generator.training
    generator.eval()
    for start in range(0, len(images), PAPER_BATCH):
        batch = images[start:start + PAPER_BATCH]
        z = torch.zeros(len(batch), generator.code_dim, device=images.device, requires_grad=True)
        opt = torch.optim.RMSprop([z], lr=0.01, alpha=0.9, eps=1e-6)
        for _ in range(steps):
            opt.zero_grad()
            generator.zero_grad()
            F.mse_loss(generator(z), batch).backward()
            opt.step()
    generator.zero_grad(set_to_none=True)
    generator.train(was_training)


def floor(generator, images, steps):
    z = torch.zeros(len(images), generator.code_dim, device=images.device, requires_grad=True)
    with frozen(generator):
        for _ in range(steps):
            generator(z).sum().backward()


def make_gan(args) -> GAN:
    """The DCGAN as a run builds it from the real configs (celeba: the paper's settings)."""
    from hydra import compose, initialize_config_module
    from hydra.utils import instantiate

    import gansweep.runs  # noqa: F401  (resolvers the root config uses)

    with initialize_config_module("gansweep.conf", version_base="1.3"):
        cfg = compose("config", overrides=[
            "arch=dcgan", f"norm={args.norm}", "dataset=celeba",
            f"dataset.image_size={args.image_size}", f"arch.generator.width={args.width}",
            f"arch.discriminator.width={args.width}"])
    return instantiate(cfg.model)


def training_iteration_time(gan: GAN, device, iterations: int = 5) -> float:
    """Seconds per GAN iteration at batch 32, through the module's own training_step."""
    import lightning as L

    class Bench(L.Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            if batch_idx == 2:  # after warm-up
                self.start = time.perf_counter()

        def on_train_end(self, trainer, pl_module):
            self.seconds = (time.perf_counter() - self.start) / (iterations - 2)

    bench = Bench()
    images = torch.rand(PAPER_BATCH * iterations, 3, gan.hparams.image_size,
                        gan.hparams.image_size)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(images),
                                         batch_size=PAPER_BATCH)
    trainer = L.Trainer(accelerator="auto", devices=1, max_epochs=1, logger=False,
                        enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=[bench])
    trainer.fit(gan, loader)
    return bench.seconds


def bench_recon(args) -> dict:
    device = "cuda" if torch.cuda.is_available() else "cpu"
    torch.manual_seed(0)
    gan = make_gan(args)
    g = gan.generator.to(device)
    images = torch.rand(args.n_images, 3, args.image_size, args.image_size, device=device)
    settings = ReconSettings(steps=args.steps, chunk_size=args.chunk_size)
    t_batched = timed(lambda: reconstruct(g, images, settings), args.repeat)
    t_paper = timed(lambda: paper_loop(g, images, args.steps), args.repeat)
    t_floor = timed(lambda: floor(g, images, args.steps), args.repeat)
    t_iter = training_iteration_time(gan, device)
    per_50 = 50 / args.steps
    result = {
        "device": torch.cuda.get_device_name() if device == "cuda" else f"cpu x{torch.get_num_threads()}",
        "setting": f"{args.norm} dcgan {args.image_size}px width {args.width}, "
                   f"{args.n_images} images, {args.steps} steps",
        "paper_loop_s": t_paper, "batched_s": t_batched, "floor_s": t_floor,
        "speedup_vs_paper": t_paper / t_batched, "batched_over_floor": t_batched / t_floor,
        "train_iter_s": t_iter,
        "running_test_50_steps_s": t_batched * per_50,
        "running_test_share": t_batched * per_50 / (t_batched * per_50 + args.every * t_iter),
    }
    return result


def bench_data(args) -> list[dict]:
    import tempfile
    from contextlib import nullcontext

    from hydra import compose, initialize_config_module
    from hydra.utils import instantiate

    import gansweep.runs  # noqa: F401
    from gansweep.data import fakes
    from gansweep.errors import build

    writers = {"celeba": lambda r: fakes.write_celeba(r, n=args.images),
               "lsun_bedroom": lambda r: fakes.write_lsun_bedroom(r, n=args.images),
               "cifar10": lambda r: fakes.write_cifar10(r, per_batch=args.images // 6),
               "mnist": lambda r: fakes.write_mnist(r, args.images - 100, 100)}
    rows = []
    with tempfile.TemporaryDirectory() as tmp, \
            initialize_config_module("gansweep.conf", version_base="1.3"):
        for name in args.datasets:
            root = f"{tmp}/{name}"
            written = writers[name](Path(root)) if name in writers else None
            checks = fakes.cifar10_checksums(written) if name == "cifar10" else nullcontext()
            batches = (args.images - 100) // PAPER_BATCH
            where = [f"dataset.root={root}"] if name in writers else []  # digits ships
            cfg = compose("config", overrides=[
                f"dataset={name}", *where, "dataset.holdout=100",
                f"paths.output_dir={tmp}", f"run_dir={tmp}/run", f"train.iters={batches}"])
            with checks:
                data = build(cfg.data)
            loader = iter(data.train_dataloader())
            next(loader)  # workers started, first batch in
            start = time.perf_counter()
            n = sum(len(batch[0]) for batch in loader)
            loader_rate = n / (time.perf_counter() - start)
            train_rate = PAPER_BATCH / training_iteration_time(instantiate(cfg.model), None)
            rows.append({"dataset": name, "image_size": cfg.dataset.image_size,
                         "workers": cfg.data.num_workers, "in_memory": cfg.data.in_memory,
                         "loader_images_s": loader_rate, "train_images_s": train_rate,
                         "ratio": loader_rate / train_rate})
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m gansweep.benchmark", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="what", required=True)
    recon = sub.add_parser("recon", help="the batched evaluator against the paper's loop")
    recon.add_argument("--norm", default="wn")
    recon.add_argument("--image-size", type=int, default=64)
    recon.add_argument("--width", type=int, default=64)
    recon.add_argument("--n-images", type=int, default=200)
    recon.add_argument("--steps", type=int, default=10)
    recon.add_argument("--chunk-size", type=int, default=ReconSettings.chunk_size,
                       help="default: 64 on CPU, all images on GPU")
    recon.add_argument("--every", type=int, default=1000, help="iterations between tests")
    recon.add_argument("--repeat", type=int, default=1)
    data = sub.add_parser("data", help="each data set's loader against the training step")
    data.add_argument("--datasets", nargs="+",
                      default=["digits", "mnist", "cifar10", "celeba", "lsun_bedroom"])
    data.add_argument("--images", type=int, default=612, help="images in each fake data set")
    args = parser.parse_args(argv)
    if args.what == "data":
        rows = bench_data(args)
        print(f"loader vs training step (batch {PAPER_BATCH}), on "
              f"{torch.cuda.get_device_name() if torch.cuda.is_available() else 'cpu x%d' % torch.get_num_threads()}:")
        print("| dataset | px | workers | in memory | loader img/s | train img/s | ratio |")
        print("|---|---|---|---|---|---|---|")
        for r in rows:
            print(f"| {r['dataset']} | {r['image_size']} | {r['workers']} | {r['in_memory']} | "
                  f"{r['loader_images_s']:.0f} | {r['train_images_s']:.0f} | {r['ratio']:.1f} |")
        return rows
    result = bench_recon(args)
    print(f"reconstruction benchmark on {result['device']}: {result['setting']}")
    print(f"  paper's loop (batches of 32, param grads): {result['paper_loop_s']:.2f} s")
    print(f"  batched evaluator:                         {result['batched_s']:.2f} s "
          f"({result['speedup_vs_paper']:.2f}x faster)")
    print(f"  floor (steps x fwd+bwd of frozen G):       {result['floor_s']:.2f} s "
          f"(evaluator / floor = {result['batched_over_floor']:.2f})")
    print(f"  training: {result['train_iter_s'] * 1000:.1f} ms per GAN iteration at batch 32; "
          f"a 50-step running test every {args.every} iterations (extrapolated) "
          f"takes {100 * result['running_test_share']:.1f}% of training time")
    return result


if __name__ == "__main__":
    main()
