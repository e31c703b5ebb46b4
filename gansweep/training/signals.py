"""What a signal does to a run: it stops at the end of a GAN iteration with a checkpoint, so
nothing done is lost, and the process says so and exits non-zero (or, for a SLURM
preemption under submitit, the job is requeued).

| signal | where | what happens |
|---|---|---|
| submitit's (USR2 unless $SUBMITIT_PREEMPT_SIGNAL) | a submitit job | checkpoint, close the run's files, submitit's handler requeues the job |
| SIGTERM | a submitit job | checkpoint at the end of the iteration, training goes on (submitit bypasses SIGTERM: SLURM sends it beside its own signal) |
| SIGTERM, SIGINT, SIGUSR1, SIGUSR2 (these two unless something else handles them) | anywhere else | checkpoint, close the run's files, exit 128 + the signal's number with one line |

During training the signal only sets a flag: at the end of the iteration (under DDP: of the
next iteration that reads the losses back, `train.log_every`) every rank learns whether any
rank got one (one collective, so all ranks stop at the same iteration), all write
`checkpoints/last.ckpt` together, and training stops. A second interrupting signal stops at
once. Outside training (building, the final test) an interrupting signal stops at once: the
run resumes from its last checkpoint.

The requeued or re-run job resumes from the checkpoint like any re-run (gansweep/job.py): same
iteration, CSVs cut back to it, same W&B run id.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
from types import FrameType
from typing import Callable, Iterator

import lightning as L
import torch

from gansweep.training.callbacks import atomic_save_checkpoint

log = logging.getLogger(__name__)


class Interrupted(BaseException):
    """A run stopped by a signal before its end. Not an `Exception`: nothing on the way out
    may take it for a failure of the run (a sweep records failures and goes on; an
    interrupted sweep stops)."""

    def __init__(self, signum: int, message: str):
        super().__init__(message)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        return 128 + self.signum  # the shell's convention: 130 for SIGINT, 143 for SIGTERM


def submitit_signal() -> signal.Signals | None:
    """The signal submitit requeues on, if this process is a submitit job."""
    if "SUBMITIT_FOLDER" not in os.environ:
        return None
    return signal.Signals[f"SIG{os.environ.get('SUBMITIT_PREEMPT_SIGNAL', 'USR2')}"]


def _ours(handler) -> bool:
    return getattr(handler, "gansweep", False)


def interrupting_signals() -> list[signal.Signals]:
    """The signals that stop a run here (see the table above); SIGUSR1/2 only while nobody
    else handles them (by default they end the process, losing what was not saved)."""
    requeue = submitit_signal()
    candidates = [signal.SIGINT]
    if requeue is None:
        candidates.append(signal.SIGTERM)
    candidates += [s for s in (signal.SIGUSR1, signal.SIGUSR2)
                   if signal.getsignal(s) in (signal.SIG_DFL, None) or _ours(signal.getsignal(s))]
    return [s for s in candidates if s != requeue]


def _name(signum: int) -> str:
    return signal.Signals(signum).name


@contextlib.contextmanager
def stop_at_once() -> Iterator[None]:
    """While inside: an interrupting signal raises `Interrupted` at once (in the main
    thread; elsewhere, where handlers cannot be set, nothing changes)."""
    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise Interrupted(signum, f"stopped by {_name(signum)} outside training; the run "
                                  f"resumes from its last checkpoint: run the same command")

    interrupt.gansweep = True  # interrupting_signals() tells ours from a user's
    previous = {}
    try:
        for signum in interrupting_signals():
            previous[signum] = signal.signal(signum, interrupt)
    except ValueError:  # not the main thread
        pass
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


class StopOnSignal(L.Callback):
    """Stops training at the end of an iteration on a signal, with a checkpoint (see the
    module's docstring); after `fit`, `train` calls `after_fit`."""

    def __init__(self, checkpoint_path, every: int = 1, save: Callable | None = None):
        self.checkpoint_path = checkpoint_path
        self.requeue_signal = submitit_signal()
        # what writes the checkpoint (default: the trainer's, to checkpoint_path); packed
        # seeds write each seed's last.ckpt instead (gansweep/job.py)
        self.save = save or (lambda trainer: atomic_save_checkpoint(trainer, checkpoint_path))
        self.every = every  # iterations between checks under DDP, where a check is collective
        self.received: int = 0  # the signal the handler got, on this rank (0: none)
        self.stopped_by: int = 0  # the signal training stopped on (the same on every rank)
        self.stopped_at: int | None = None  # the iteration the checkpoint was taken at
        self._previous: dict[int, Callable] = {}
        self._submitit_handler: Callable | None = None

    @property
    def preempted_at(self) -> int | None:
        """The iteration a requeue signal stopped training at (None if it did not)."""
        return self.stopped_at if self.stopped_by == self.requeue_signal else None

    def _stops(self, signum: int) -> bool:
        """Whether `signum` stops training (a SIGTERM in a submitit job only checkpoints)."""
        return not (signum == signal.SIGTERM and self.requeue_signal is not None)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if not self._stops(signum):
            self.received = self.received or signum
            return
        if self.received and self._stops(self.received) and signum != self.requeue_signal:
            raise Interrupted(signum, f"stopped by a second signal ({_name(signum)}); the "
                                      f"run resumes from its last checkpoint: run the same "
                                      f"command")
        self.received = signum
        if signum != self.requeue_signal:
            log.warning(f"gansweep: {_name(signum)}: stopping at the end of this iteration "
                        f"with a checkpoint (send it again to stop at once)")

    _on_signal.gansweep = True  # interrupting_signals() tells ours from a user's

    def on_train_start(self, trainer, pl_module):
        # after Lightning's own handlers (set when fit starts), which would end the run with
        # exit code 0 on SIGTERM
        watched = [*interrupting_signals(), signal.SIGTERM]
        if self.requeue_signal is not None:
            watched.append(self.requeue_signal)
        for signum in dict.fromkeys(watched):
            self._previous[signum] = signal.signal(signum, self._on_signal)
        self._submitit_handler = self._previous.get(self.requeue_signal)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if not self._previous:
            return
        if trainer.world_size > 1:
            if pl_module.iteration % self.every:
                return  # the collective (and its wait for the device) only where losses are read
            flag = torch.tensor(float(self.received), device=pl_module.device)
            received = int(trainer.strategy.reduce(flag, reduce_op="max"))
        else:
            received = self.received
        if not received or self.stopped_at is not None or not pl_module.read_losses():
            return
        log.warning(f"gansweep: {_name(received)}: saving {self.checkpoint_path} at iteration "
                    f"{pl_module.iteration}")
        self.save(trainer)
        if not self._stops(received):
            self.received = 0  # submitit's contract: SIGTERM does not stop the job
            return
        self.stopped_by, self.stopped_at = received, pl_module.iteration
        trainer.should_stop = True

    def on_train_end(self, trainer, pl_module):
        self._restore()

    def on_exception(self, trainer, pl_module, exception):
        self._restore()

    def _restore(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous = {}

    def after_fit(self, trainer) -> None:
        """Once the run's files and W&B are closed: hand a requeue signal over to submitit's
        handler (rank 0; it requeues the job and exits), or raise `Interrupted` for any other
        that stopped training."""
        if not self.stopped_by:
            return
        if self.preempted_at is not None:
            if trainer.is_global_zero and callable(self._submitit_handler):
                self._submitit_handler(self.requeue_signal, None)
            return  # only returns outside submitit (tests), or on other ranks
        raise Interrupted(self.stopped_by,
                          f"stopped by {_name(self.stopped_by)} at iteration "
                          f"{self.stopped_at}, saved in {self.checkpoint_path}; run the same "
                          f"command to resume")
