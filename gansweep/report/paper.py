"""The paper's own numbers, to set beside a report's rows that share its settings.

Xiang & Li, "On the Effects of Batch and Weight Normalization in Generative Adversarial
Networks" (arXiv 1704.03971), the table of the DCGAN on CelebA: one run per variant, best
iteration by the running test (200 images), running loss at that iteration, final loss of
that checkpoint on 2000 images. Its other settings (LSUN bedroom, CIFAR-10, the ResNet) have
no table of numbers to compare with.
"""

from __future__ import annotations

SOURCE = ("Xiang & Li (arXiv 1704.03971), their table for the DCGAN on CelebA, one run per "
          "variant")

# (arch, dataset) -> norm -> the paper's row
TABLES = {
    ("dcgan", "celeba"): {
        "vanilla": {"best_iter": 30_500, "running_loss": 0.014509, "final_loss": 0.006171},
        "bn": {"best_iter": 30_500, "running_loss": 0.017199, "final_loss": 0.006355},
        "wn": {"best_iter": 463_000, "running_loss": 0.013010, "final_loss": 0.005524},
    },
}


# what every run of the paper trained with
PAPERS_LOSS, PAPERS_PENALTY = "nonsaturating", "none"


def papers_row(norm: str, arch: str, dataset: str, loss: str = PAPERS_LOSS,
               penalty: str = PAPERS_PENALTY) -> dict | None:
    """The paper's numbers for this variant, or None where the paper published none (its
    other settings, and any other loss or penalty than its own)."""
    if (loss, penalty) != (PAPERS_LOSS, PAPERS_PENALTY):
        return None
    return TABLES.get((arch, dataset), {}).get(norm)
