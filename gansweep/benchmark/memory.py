"""Peak memory of training and of the final test, for both architectures at 64 px.

    python -m gansweep.benchmark memory

For each architecture (the paper's widths, 64 px, WN) it measures the memory one block of
work adds at its peak:
- training: GAN iterations at batch 32 (after one warm-up iteration, so the optimisers'
  state is already there);
- the evaluator: one z step of `gansweep.method.reconstruction` over `--images` images in
  one chunk, whose per-image figure times 2000 is what the paper's final test needs in one
  chunk (the evaluator's default on a GPU; it retries in halves when that does not fit).
On a GPU the figure is torch's allocator peak; on a CPU the process's peak resident set
(Linux `VmHWM`, reset before each block through `/proc/self/clear_refs`), which also counts
the allocator's own slack, so read it as an upper bound.
"""

from __future__ import annotations

import lightning as L
import torch
from hydra.utils import instantiate

from gansweep.benchmark.common import device_name, root_config
from gansweep.cli import positive_int
from gansweep.method.reconstruction import ReconSettings, reconstruct
from gansweep.training.capacity import Peak

ARCHS = {  # the paper's networks at 64 px (celeba's settings: only the config is used)
    "dcgan": ["arch=dcgan", "arch.generator.width=64", "arch.discriminator.width=64"],
    "resnet": ["arch=resnet"],  # 5 levels, widths 64-512, 2 blocks each
}
FINAL_TEST_IMAGES = 2000  # the paper's final test set
MIB = 2**20


def build(arch: str):
    """The run's GAN and data module at 64 px with the paper's widths (WN)."""
    return instantiate(root_config(*ARCHS[arch], "dataset=celeba").model)


def training_peak(gan, iterations: int) -> int:
    device = "cuda" if torch.cuda.is_available() else "cpu"
    images = torch.rand(32 * (iterations + 1), 3, 64, 64)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(images), batch_size=32)
    peak = Peak()

    class Measure(L.Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            if batch_idx == 1:
                peak.__enter__()

        def on_train_end(self, trainer, pl_module):
            peak.__exit__(None, None, None)

    trainer = L.Trainer(accelerator=device, devices=1, max_epochs=1, logger=False,
                        enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=[Measure()])
    trainer.fit(gan, loader)
    return peak.bytes


def evaluator_peak(generator, n_images: int) -> int:
    device = "cuda" if torch.cuda.is_available() else "cpu"
    generator = generator.to(device)
    images = torch.rand(n_images, 3, 64, 64, device=device)
    with Peak() as peak:
        reconstruct(generator, images, ReconSettings(steps=1, chunk_size=n_images))
    return peak.bytes


def run(args) -> list[dict]:
    rows = []
    for arch in args.archs:
        gan = build(arch)
        train = training_peak(gan, args.iterations)
        evaluator = evaluator_peak(gan.generator, args.images)
        per_image = evaluator / args.images
        rows.append({"arch": arch, "train_peak_mib": train / MIB,
                     "evaluator_images": args.images, "evaluator_peak_mib": evaluator / MIB,
                     "per_image_mib": per_image / MIB,
                     "final_test_one_chunk_gib": per_image * FINAL_TEST_IMAGES / 2**30})
        del gan
    return rows


def add_arguments(parser) -> None:
    parser.add_argument("--archs", nargs="+", default=list(ARCHS), choices=list(ARCHS))
    parser.add_argument("--images", type=positive_int, default=64,
                        help="images in the evaluator's measured chunk")
    parser.add_argument("--iterations", type=positive_int, default=2,
                        help="training iterations measured (after one warm-up)")


def report(rows: list[dict], args) -> None:
    print(f"peak memory at 64 px (WN, the paper's widths), on {device_name()}:")
    print(f"| arch | training, batch 32 | evaluator, {args.images} images | per image | "
          f"final test ({FINAL_TEST_IMAGES} images) in one chunk |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['arch']} | {r['train_peak_mib']:.0f} MiB | "
              f"{r['evaluator_peak_mib']:.0f} MiB | {r['per_image_mib']:.1f} MiB | "
              f"{r['final_test_one_chunk_gib']:.1f} GiB |")
