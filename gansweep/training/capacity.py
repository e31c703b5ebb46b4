"""How many packed copies fit in a GPU's memory, asked when a packed job's copies did not.

A packed job (`train.seeds`) whose first iteration runs out of GPU memory ends with one line
naming the largest number of seeds that fits, instead of torch's allocator report. The
memory of a packed iteration is a fixed part plus a part per copy (each copy's weights,
gradients, RMSProp state and activations), so one training iteration measured with 1 and
with 2 copies (throwaway networks, random images, the run's own step, precision and
trainer) gives both parts, and the GPU's free memory then gives the largest count.

It is asked only after the job ran out, never before: a job that fits pays nothing, and an
estimate can never refuse a count that would have fitted. On a CPU nothing is asked: there,
running out of memory is the kernel killing the process, not an error torch raises.
"""

from __future__ import annotations

import contextlib
import copy
import ctypes
import gc
import logging
import tempfile
from pathlib import Path
from typing import Callable

import torch
from omegaconf import DictConfig, open_dict
from torch.utils.data import DataLoader, TensorDataset

from gansweep.training.trainer import make_trainer

GIB = 2**30


def _status_bytes(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024  # kB
    raise RuntimeError(f"no {field} in /proc/self/status")


class Peak:
    """The memory a block adds at its peak, in bytes (`.bytes` once the block is done): on
    a GPU torch's allocator peak (with `reserved`, the peak of what its cache holds, which
    is what runs out), on a CPU the process's peak resident set (an upper bound: it also
    counts the allocator's own slack)."""

    def __init__(self, reserved: bool = False):
        self.reserved = reserved

    def _cuda(self, peak: bool) -> int:
        if self.reserved:
            return torch.cuda.max_memory_reserved() if peak else torch.cuda.memory_reserved()
        return torch.cuda.max_memory_allocated() if peak else torch.cuda.memory_allocated()

    def __enter__(self):
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
            if self.reserved:
                torch.cuda.empty_cache()  # what the cache holds unused is not the block's
            torch.cuda.reset_peak_memory_stats()
            self.base = self._cuda(peak=False)
        else:
            ctypes.CDLL("libc.so.6").malloc_trim(0)  # freed memory back to the system first
            Path("/proc/self/clear_refs").write_text("5")  # VmHWM := VmRSS
            self.base = _status_bytes("VmRSS")
        return self

    def __exit__(self, *exc):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
            self.bytes = self._cuda(peak=True) - self.base
        else:
            self.bytes = _status_bytes("VmHWM") - self.base


def raises_out_of_memory(device: torch.device) -> bool:
    """Whether running out of memory on `device` is an error the job can still report."""
    return device.type == "cuda"


def free_bytes() -> int:
    """What this process may still allocate on the GPU once torch's cache is handed back:
    the device's free memory (other processes' and the CUDA context's are not), within the
    share `torch.cuda.set_per_process_memory_fraction` allows."""
    gc.collect()
    torch.cuda.empty_cache()
    free, total = torch.cuda.mem_get_info()
    share = torch.cuda.get_per_process_memory_fraction() * total - torch.cuda.memory_reserved()
    return int(min(free, share))


def growth(one: int, two: int) -> tuple[int, int]:
    """(fixed bytes, bytes per copy) of an iteration, from its peaks with one copy (`one`)
    and with two (`two`)."""
    per_copy = two - one if two > one else max(one, 1)  # no growth is noise: all per copy
    return max(one - per_copy, 0), per_copy


def largest_count(one: int, two: int, free: int) -> int:
    """The most copies whose iteration fits in `free` bytes (`one`, `two`: see `growth`)."""
    fixed, per_copy = growth(one, two)
    return max((free - fixed) // per_copy, 0)


@contextlib.contextmanager
def _lightning_quiet():
    """Without Lightning's lines about devices and the end of fit (twice per probe)."""
    logger = logging.getLogger("lightning.pytorch")
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)


def iteration_peak(cfg: DictConfig, build: Callable[[int], torch.nn.Module],
                   copies: int) -> int | None:
    """Bytes one training iteration of `build(copies)` adds at its peak, run as the job runs
    it (its trainer settings, precision included) on random images; None if it ran out."""
    cfg = copy.deepcopy(cfg)
    with open_dict(cfg):
        cfg.trainer.enable_progress_bar = False
    d = cfg.dataset
    images = torch.rand(copies * cfg.train.batch_size, d.channels, d.image_size, d.image_size)
    loader = DataLoader(TensorDataset(images), batch_size=len(images))  # one iteration
    try:
        with tempfile.TemporaryDirectory() as scratch, _lightning_quiet(), \
                Peak(reserved=True) as peak:
            trainer = make_trainer(cfg, Path(scratch), [], logger=None)
            trainer.fit(build(copies), train_dataloaders=loader)
    except torch.OutOfMemoryError:
        return None
    return peak.bytes


def copies_do_not_fit(cfg: DictConfig, build: Callable[[int], torch.nn.Module],
                      seeds: list[int]) -> str:
    """The line a packed job of `seeds` ends with when its first iteration ran out of
    memory: how much one iteration needs and how many copies fit. Call it once the failed
    attempt's tensors are gone: what they held counts as free."""
    available = free_bytes()
    one = iteration_peak(cfg, build, 1)
    two = iteration_peak(cfg, build, 2) if one is not None else None
    head = (f"train.seeds: {len(seeds)} packed copies ran out of GPU memory in their first "
            f"iteration ({available / GIB:.1f} GiB free)")
    if one is None:
        return (f"{head}, and one copy alone does too: this run does not fit on this GPU at "
                f"all. Use a smaller train.batch_size or a GPU with more memory.")
    fits = min(largest_count(one, two, available) if two is not None else 1, len(seeds) - 1)
    if fits < 1:
        return (f"{head}; one copy's iteration needs {one / GIB:.2f} GiB, so not one fits. "
                f"Free the GPU, use a smaller train.batch_size or a GPU with more memory.")
    more = (f"each further copy {growth(one, two)[1] / GIB:.2f} GiB" if two is not None
            else "two do not fit")
    groups = [seeds[i:i + fits] for i in range(0, len(seeds), fits)]
    example = " then ".join("'train.seeds=[" + ",".join(map(str, g)) + "]'" for g in groups)
    return (f"{head}; one copy's iteration needs {one / GIB:.2f} GiB and {more}, so at most "
            f"{fits} fit. Pack at most {fits} seeds per job, e.g. {example}.")
