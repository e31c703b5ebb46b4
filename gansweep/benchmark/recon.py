"""The batched evaluator (`gansweep.method.reconstruction.reconstruct`) against the paper's loop.

    python -m gansweep.benchmark recon

It compares, on the same G, images and steps:
- paper: the authors' loop: batches of 32, each optimised for all steps, with G's parameter
  gradients computed too (Torch7's `backward` computes both);
- batched: `gansweep.method.reconstruction.reconstruct` (all images at once, G frozen);
- floor: steps x (one forward + backward of the frozen G over all images), no optimiser;
- training: GAN iterations at batch 32 (the paper's), to put the running test's cost (one
  test every `--every` iterations) next to the training it interrupts.
Per-step costs are linear in the number of steps, so `--steps` below 50 gives the same ratios
faster; the figures for 50 steps are extrapolated and labelled so.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from hydra.utils import instantiate

from gansweep.benchmark.common import device_name, root_config, timed, training_iteration_time
from gansweep.cli import non_negative_int, positive_int
from gansweep.method.norms import VARIANTS
from gansweep.method.reconstruction import PAPER_BATCH, ReconSettings, frozen, reconstruct
from gansweep.training.gan import GAN
from gansweep.validate import validate


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
    # (no sample quality: not timed here, and its Inception weights may be absent)
    cfg = root_config("arch=dcgan", f"norm={args.norm}", "dataset=celeba", "quality.metrics=[]",
                      f"dataset.image_size={args.image_size}", f"arch.generator.width={args.width}",
                      f"arch.discriminator.width={args.width}")
    validate(cfg)  # an image size the DCGAN cannot take: one line, as for a run
    return instantiate(cfg.model)


def run(args) -> dict:
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
        "device": device_name(),
        "setting": f"{args.norm} dcgan {args.image_size}px width {args.width}, "
                   f"{args.n_images} images, {args.steps} steps",
        "paper_loop_s": t_paper, "batched_s": t_batched, "floor_s": t_floor,
        "speedup_vs_paper": t_paper / t_batched, "batched_over_floor": t_batched / t_floor,
        "train_iter_s": t_iter,
        "running_test_50_steps_s": t_batched * per_50,
        "running_test_share": t_batched * per_50 / (t_batched * per_50 + args.every * t_iter),
    }
    return result




def add_arguments(parser) -> None:
    parser.add_argument("--norm", default="wn", choices=sorted(VARIANTS))
    parser.add_argument("--image-size", type=positive_int, default=64)
    parser.add_argument("--width", type=positive_int, default=64)
    parser.add_argument("--n-images", type=positive_int, default=200)
    parser.add_argument("--steps", type=non_negative_int, default=10)
    parser.add_argument("--chunk-size", type=positive_int, default=ReconSettings.chunk_size,
                        help="default: 64 on CPU, all images on GPU")
    parser.add_argument("--every", type=positive_int, default=1000, help="iterations between tests")
    parser.add_argument("--repeat", type=positive_int, default=1)


def report(result: dict, args) -> None:
    print(f"reconstruction benchmark on {result['device']}: {result['setting']}")
    print(f"  paper's loop (batches of 32, param grads): {result['paper_loop_s']:.2f} s")
    print(f"  batched evaluator:                         {result['batched_s']:.2f} s "
          f"({result['speedup_vs_paper']:.2f}x faster)")
    print(f"  floor (steps x fwd+bwd of frozen G):       {result['floor_s']:.2f} s "
          f"(evaluator / floor = {result['batched_over_floor']:.2f})")
    print(f"  training: {result['train_iter_s'] * 1000:.1f} ms per GAN iteration at batch 32; "
          f"a 50-step running test every {args.every} iterations (extrapolated) "
          f"takes {100 * result['running_test_share']:.1f}% of training time")
