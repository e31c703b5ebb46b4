"""What a run's console shows: gansweep's own lines, the progress bar and real warnings.

Third-party libraries print some lines on every run that say nothing about it; each is
silenced here by its exact text, with the reason, so that a new warning still shows.
"""

from __future__ import annotations

import logging
import re
import warnings

# (message start, why it is noise for a gansweep run)
NOISE = {
    "The `srun` command is available on your system but is not used":
        "Lightning's hint to start runs with srun; gansweep starts SLURM jobs through "
        "submitit (hydra/launcher=slurm), whose tasks Lightning reads from the environment",
    "`isinstance(treespec, LeafSpec)` is deprecated":
        "Lightning's own use of a torch API it has yet to update; nothing a user can change",
    "Metric `Kernel Inception Distance` will save all extracted features in buffer":
        "torchmetrics' note at every KID; gansweep gives it the features of quality.n_samples "
        "images, a few MB (gansweep/quality/metrics.py)",
}
TIP = "💡 Tip:"  # Lightning's advertisement for its hosted logger, before every fit


class _DropTips(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(TIP)


def quiet() -> None:
    """Silence the lines in NOISE and Lightning's tips (idempotent; call per run, since
    test runners and notebooks reset warning filters)."""
    for message in NOISE:
        warnings.filterwarnings("ignore", message=re.escape(message))
    rank_zero = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    if not any(isinstance(f, _DropTips) for f in rank_zero.filters):
        rank_zero.addFilter(_DropTips())
