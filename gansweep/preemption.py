"""Preemption and time limits under submitit: checkpoint at an iteration boundary, then requeue.

SLURM warns a job `signal_delay_s` before its time limit (and on preemption, if the cluster is
set up so) with the signal submitit listens to (USR2 unless $SUBMITIT_PREEMPT_SIGNAL says
otherwise). Submitit's handler requeues the job at once, from inside whatever was running.
`RequeueOnSignal` defers it to the end of the current GAN iteration:

1. the signal only sets a flag;
2. at the end of the iteration (under DDP: of the next iteration that reads the losses back,
   `train.log_every`) every rank learns whether any rank got it (one collective, so all ranks
   stop at the same iteration), all write `checkpoints/last.ckpt` together, and training
   stops;
3. `train()` closes the run's files and W&B, then rank 0 hands over to submitit's handler,
   which requeues the job (the same hydra job again) and exits.

The requeued job resumes from that checkpoint like any re-run (`train.py`): same iteration,
CSVs cut back to it, same W&B run id. Outside submitit nothing is installed; a killed run then
resumes from its last periodic checkpoint when run again.
"""

from __future__ import annotations

import logging
import os
import signal
from types import FrameType
from typing import Callable

import lightning as L
import torch

from gansweep.callbacks import atomic_save_checkpoint

log = logging.getLogger(__name__)


def submitit_signal() -> signal.Signals | None:
    """The signal submitit requeues on, if this process is a submitit job."""
    if "SUBMITIT_FOLDER" not in os.environ:
        return None
    return signal.Signals[f"SIG{os.environ.get('SUBMITIT_PREEMPT_SIGNAL', 'USR2')}"]


class RequeueOnSignal(L.Callback):
    def __init__(self, checkpoint_path, signum: signal.Signals | None, every: int = 1,
                 save: Callable | None = None):
        self.checkpoint_path, self.signum = checkpoint_path, signum
        # what writes the checkpoint (default: the trainer's, to checkpoint_path); packed
        # seeds write each seed's last.ckpt instead (gansweep/seeds.py)
        self.save = save or (lambda trainer: atomic_save_checkpoint(trainer, checkpoint_path))
        self.every = every  # iterations between checks under DDP, where a check is collective
        self.received = False  # set by the signal handler, on this rank
        self.preempted_at: int | None = None  # the iteration the checkpoint was taken at
        self._submitit_handler: Callable | None = None

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self.received = True

    def on_train_start(self, trainer, pl_module):
        if self.signum is not None:
            self._submitit_handler = signal.signal(self.signum, self._on_signal)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if self.signum is None:
            return
        if trainer.world_size > 1:
            if pl_module.iteration % self.every:
                return  # the collective (and its wait for the device) only where losses are read
            flag = torch.tensor(float(self.received), device=pl_module.device)
            received = bool(trainer.strategy.reduce(flag, reduce_op="sum") > 0)
        else:
            received = self.received
        if received and self.preempted_at is None and pl_module.read_losses():
            log.warning(f"gansweep: SLURM signal {self.signum.name}: saving "
                        f"{self.checkpoint_path} at iteration {pl_module.iteration} and stopping")
            self.save(trainer)
            self.preempted_at = pl_module.iteration
            trainer.should_stop = True

    def on_train_end(self, trainer, pl_module):
        self._restore()  # a signal from now on (the final test) requeues at once

    def on_exception(self, trainer, pl_module, exception):
        self._restore()

    def _restore(self) -> None:
        if self._submitit_handler is not None:
            signal.signal(self.signum, self._submitit_handler)

    def requeue(self, trainer) -> None:
        """If training stopped on the signal: submitit's handler requeues the job and exits
        (rank 0; call this once the run's files and W&B are closed). Other ranks return and
        end with the job."""
        if self.preempted_at is not None and trainer.is_global_zero \
                and callable(self._submitit_handler):
            self._submitit_handler(self.signum, None)
