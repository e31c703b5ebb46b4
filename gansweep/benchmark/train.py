"""A GAN iteration through gansweep against a hand-written PyTorch loop of the same networks.

    python -m gansweep.benchmark train            # docs/benchmarks.md's table
    python -m gansweep.benchmark train --quick    # every cell, fewer iterations and repeats

For each setting and norm it times, in one process, interleaved and repeated (medians):
- hand: a minimal loop written directly in PyTorch over the same G, D, optimisers and
  batches, built from the same config: a D step on a real and a fake batch, a G step with
  D's parameters frozen, codes drawn on the device, nothing else;
- gansweep: `gansweep.job.train`, the function `python -m gansweep` calls: the Trainer and
  every callback, train.csv, W&B offline, the progress bar.
The timed window is whole multiples of `train.log_every` iterations after a warm-up, so the
periodic read-back of the losses (rows, W&B points, divergence check) is inside it, and the
running test and checkpoints (timed by `benchmark recon`) are outside it.

It also counts the aten ops each path dispatches in one steady-state iteration (views
excluded: they launch nothing; on a GPU nearly every other op is one kernel launch) and the
kernels it runs (`KernelCounter`), and on a GPU the host-device syncs per iteration in
gansweep's window (`torch.cuda.set_sync_debug_mode`) and the GPU's busy share: the time its
kernels take in one iteration (torch's profiler, the union over streams) over the iteration's
wall time (timed without the profiler). A launch-bound loop leaves the GPU mostly idle.

`--overrides KEY=VALUE ...` applies Hydra overrides to every run of both loops (e.g.
`+train.optimizer.foreach=true`, RMSProp as torch runs it on a GPU).

`--penalties wgan_gp dragan` adds each norm's runs with that gradient penalty (the hand loop
adds the same penalty, `gansweep.method.losses`), and the cost of each as ratios to the run without.

`--compile MODE` adds a third path, gansweep with `train.compile=MODE`, the time of its
first iteration (the compilation), and the kernels it runs in one iteration: its fused
kernels are not aten ops, so `KernelCounter` counts them from torch's profiler (on a CPU,
inductor's kernels and the aten ops called outside them; on a GPU, the host's launches).
"""

from __future__ import annotations

import contextlib
import functools
import statistics
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import lightning as L
import torch
import torch.nn.functional as F
from hydra.errors import HydraException
from hydra.utils import instantiate
from torch._inductor import config as inductor_config
from torch.autograd import DeviceType
from torch.profiler import ProfilerActivity
from torch.utils._python_dispatch import TorchDispatchMode

from gansweep.benchmark.common import device_name, root_config, synchronize
from gansweep.cli import positive_int
from gansweep.errors import GansweepError, build
from gansweep.job import train
from gansweep.method.losses import PENALTIES
from gansweep.method.norms import VARIANTS
from gansweep.settings import COMPILE_MODES
from gansweep.validate import ConfigError, validate

NORMS = ["vanilla", "bn", "wn", "sn"]
SETTINGS = {
    "digits": [],  # the default run: 32 px, width 32 (conf/arch_dataset/dcgan_digits.yaml)
    "dcgan64": ["dataset.image_size=64", "arch.generator.width=64",  # the paper's DCGAN
                "arch.discriminator.width=64"],
}


@dataclass(frozen=True)
class Plan:
    """How long each measurement runs: `warmup` iterations, then `reads` x `log_every`."""
    log_every: int
    reads: int
    repeat: int

    @property
    def warmup(self) -> int:
        return max(self.log_every, 3)  # ops are counted in iteration warmup - 1: steady state


    @property
    def timed(self) -> int:
        return self.log_every * self.reads

    @property
    def iters(self) -> int:
        return self.warmup + self.timed + 1  # the last iteration's tests stay outside


PLANS = {  # (setting, quick) -> Plan; DCGAN-64 iterations are slow on a CPU: fewer of them
    ("digits", False): Plan(log_every=50, reads=2, repeat=5),
    ("digits", True): Plan(log_every=20, reads=2, repeat=2),
    ("dcgan64", False): Plan(log_every=10, reads=3, repeat=3),
    ("dcgan64", True): Plan(log_every=4, reads=2, repeat=2),
}


class OpCounter(TorchDispatchMode):
    """Counts the aten ops dispatched while active, views excluded; `names` lists them
    (e.g. "convolution", "_weight_norm_interface") in dispatch order."""

    def __init__(self):
        super().__init__()
        self.names: list[str] = []

    @property
    def ops(self) -> int:
        return len(self.names)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if not func.is_view:
            self.names.append(func.__name__.split(".")[0])
        return func(*args, **(kwargs or {}))


class KernelCounter:
    """Counts the kernels run while active, from torch's profiler: the count for a compiled
    path, whose fused kernels are not aten ops.
    - On a CPU: inductor's generated kernels (named in the profiler where
      `cpp.enable_kernel_profile` was on as they compiled; `run` sets it), and the aten ops
      run outside any other counted op, views and allocations excluded (on eager code, the
      ops `OpCounter` counts).
    - On a GPU: the launches the host makes (kernels, CUDA graphs, copies), which is what a
      launch-bound iteration pays for; `gpu_seconds` is the time the device spent running
      them (None on a CPU)."""

    def __enter__(self):
        activities = [ProfilerActivity.CPU]
        if torch.cuda.is_available():
            activities.append(ProfilerActivity.CUDA)
        synchronize()  # what earlier code queued runs before the count starts
        self._profile = torch.profiler.profile(activities=activities)
        self._profile.__enter__()
        return self

    def __exit__(self, *exc):
        synchronize()  # the counted code's kernels finish (and are recorded) before it ends
        self._profile.__exit__(*exc)
        events = self._profile.events()
        on_gpu = torch.cuda.is_available()
        self.kernels = (sum(e.name in CUDA_LAUNCHES for e in events) if on_gpu
                        else sum(_is_cpu_kernel(e) for e in events))
        self.gpu_seconds = busy_seconds(
            (e.time_range.start, e.time_range.end) for e in events
            if e.device_type == DeviceType.CUDA) if on_gpu else None


def busy_seconds(intervals) -> float:
    """Seconds covered by the union of (start, end) intervals in microseconds: the device's
    busy time, where kernels on two streams overlap."""
    busy, reach = 0.0, float("-inf")
    for start, end in sorted(intervals):
        if end > reach:
            busy += end - max(start, reach)
            reach = end
    return busy / 1e6


CUDA_LAUNCHES = {"cudaLaunchKernel", "cudaLaunchKernelExC", "cuLaunchKernel", "cuLaunchKernelEx",
                 "cudaGraphLaunch", "cudaMemcpyAsync", "cudaMemsetAsync"}
ALLOCATIONS = {"empty", "empty_strided", "empty_like", "new_empty", "new_empty_strided",
               "resize_"}


def _is_cpu_kernel(event) -> bool:
    if "cpp_fused" in event.name:  # inductor's name for its generated CPU kernels
        return True
    if not _is_work(event.name):
        return False
    parent = event.cpu_parent
    while parent is not None:
        if _is_work(parent.name):
            return False  # inside a counted op: part of its work
        parent = parent.cpu_parent
    return True


@functools.cache
def _is_work(name: str) -> bool:
    """Whether a profiler event is an aten op that computes (not a view nor an allocation)."""
    if not name.startswith("aten::"):
        return False
    op = name.removeprefix("aten::")
    packet = getattr(torch.ops.aten, op, None)
    if op in ALLOCATIONS or packet is None:
        return False
    return not any(getattr(packet, overload).is_view for overload in packet.overloads())


def compose_run(tmp: Path, setting: str, norm: str, plan: Plan, name: str, extra=()):
    n = plan.iters
    return root_config(
        f"norm={norm}", *SETTINGS[setting], f"paths.output_dir={tmp}",
        f"run_dir={tmp}/{name}", f"train.iters={n}", f"train.log_every={plan.log_every}",
        f"recon.every={n}", f"train.ckpt_every={n}", f"train.sample_every={n}",
        "recon.n_images=8", "recon.steps=1", "final.n_images=8", "final.steps=1",
        "wandb.mode=offline", *extra)


def counting(counters) -> contextlib.ExitStack:
    """All of `counters` (`OpCounter`, `KernelCounter`) active together."""
    stack = contextlib.ExitStack()
    for counter in counters:
        stack.enter_context(counter)
    return stack


def hand_loop(cfg, plan: Plan, counters=()) -> float:
    """Seconds per iteration of the minimal loop; `counters` count its iteration
    `plan.warmup - 2`."""
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    L.seed_everything(cfg.seed, verbose=False)
    model = instantiate(cfg.model)
    G, D = model.generator.to(device), model.discriminator.to(device)
    opt_d, opt_g = model.configure_optimizers()
    batches = iter(build(cfg.data).train_dataloader())
    start = 0.0
    for i in range(plan.warmup + plan.timed):
        if i == plan.warmup:
            synchronize()
            start = time.perf_counter()
        with counting(counters) if i == plan.warmup - 2 else contextlib.nullcontext():
            real = next(batches)[0].to(device, non_blocking=True)
            n = len(real)
            fake = G(torch.randn(n, G.code_dim, device=device)).detach()
            d_real, d_fake = D(real), D(fake)
            d_loss = (F.binary_cross_entropy_with_logits(d_real, torch.ones_like(d_real))
                      + F.binary_cross_entropy_with_logits(d_fake, torch.zeros_like(d_fake)))
            if model.penalty:
                d_loss = d_loss + model.penalty(
                    D, real, fake, lambda *shape: torch.rand(*shape, device=device))
            opt_d.zero_grad(set_to_none=True)
            d_loss.backward()
            opt_d.step()
            D.requires_grad_(False)
            d_gen = D(G(torch.randn(n, G.code_dim, device=device)))
            g_loss = F.binary_cross_entropy_with_logits(d_gen, torch.ones_like(d_gen))
            opt_g.zero_grad(set_to_none=True)
            g_loss.backward()
            opt_g.step()
            D.requires_grad_(True)
    synchronize()
    return (time.perf_counter() - start) / plan.timed


class Window(L.Callback):
    """Times gansweep's iterations [warmup, warmup + timed), counts in one iteration before
    them with `counters` (`OpCounter`, `KernelCounter`), and on a GPU counts the syncs inside
    the window."""

    def __init__(self, plan: Plan, counters=()):
        self.plan, self.counters, self._counting = plan, counters, None
        self.seconds = self.syncs = self.compile_seconds = None
        self._caught = None

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if batch_idx == self.plan.warmup - 2:
            self._counting = counting(self.counters).__enter__()
        if batch_idx == self.plan.warmup:
            synchronize()
            self._sync_watch(start=True)
            self._start = time.perf_counter()
        if batch_idx == self.plan.warmup + self.plan.timed:
            synchronize()
            self.seconds = (time.perf_counter() - self._start) / self.plan.timed
            self._sync_watch(start=False)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if batch_idx == self.plan.warmup - 2:
            self._counting.close()
        if batch_idx == 0:
            self.compile_seconds = pl_module.compile_seconds

    def _sync_watch(self, start: bool) -> None:
        """`torch.cuda.set_sync_debug_mode` warns at each sync; count them (GPU only)."""
        if not torch.cuda.is_available():
            return
        if start:
            self._caught = warnings.catch_warnings(record=True)
            self._records = self._caught.__enter__()
            warnings.simplefilter("always")
            torch.cuda.set_sync_debug_mode("warn")
        else:
            torch.cuda.set_sync_debug_mode("default")
            self._caught.__exit__(None, None, None)
            self.syncs = sum("synchroniz" in str(w.message) for w in self._records)


def gansweep_loop(cfg, plan: Plan, log: Path, counters=()) -> Window:
    """gansweep's run, observed: `seconds` per iteration, `counters`' counts in one iteration,
    `syncs` in the window (None on CPU), `compile_seconds` (None when eager)."""
    window = Window(plan, counters)
    with open(log, "a") as out, contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        train(cfg, callbacks=[window])
    return window


def busy_share(counter: KernelCounter, seconds: float) -> float | None:
    """The share of an iteration's wall time the GPU spent running its kernels (None on a
    CPU, where there is no device to leave idle)."""
    return None if counter.gpu_seconds is None else counter.gpu_seconds / seconds


def measure(setting: str, norm: str, plan: Plan, tmp: Path, compile_mode: str | None,
            penalty: str = "none", overrides: tuple[str, ...] = ()) -> dict:
    hand, full, compiled, compile_s, syncs = [], [], [], [], None
    extra = [f"penalty={penalty}", *overrides]
    for r in range(plan.repeat):  # interleaved, so drifts in machine speed hit both alike
        hand_ops, hand_kernels = OpCounter(), KernelCounter()
        hand.append(hand_loop(compose_run(tmp, setting, norm, plan, f"hand{r}", extra), plan,
                              (hand_ops, hand_kernels)))
        cfg = compose_run(tmp, setting, norm, plan, f"{setting}-{norm}-{penalty}-{r}", extra)
        ops, kernels = OpCounter(), KernelCounter()
        window = gansweep_loop(cfg, plan, tmp / "runs.log", (ops, kernels))
        full.append(window.seconds)
        syncs = window.syncs
        if compile_mode and not VARIANTS[norm].cannot_compile:  # else refused (validate)
            cfg = compose_run(tmp, setting, norm, plan,
                              f"{setting}-{norm}-{penalty}-compiled-{r}",
                              [*extra, f"train.compile={compile_mode}"])
            compiled_kernels = KernelCounter()
            window = gansweep_loop(cfg, plan, tmp / "runs.log", (compiled_kernels,))
            compiled.append(window.seconds)
            compile_s.append(window.compile_seconds)
    h, f = statistics.median(hand), statistics.median(full)
    c = statistics.median(compiled) if compiled else None
    return {"setting": setting, "norm": norm, "penalty": penalty, "hand_s": h, "gansweep_s": f,
            "ratio": f / h, "hand_runs_s": hand, "gansweep_runs_s": full,
            "hand_ops": hand_ops.ops, "gansweep_ops": ops.ops,
            "hand_kernels": hand_kernels.kernels, "gansweep_kernels": kernels.kernels,
            "hand_busy": busy_share(hand_kernels, h), "gansweep_busy": busy_share(kernels, f),
            "syncs_per_iter": None if syncs is None else syncs / plan.timed,
            "compiled_s": c, "compiled_ratio": None if c is None else c / h,
            "compile_s": compile_s[0] if compile_s else None,
            "compiled_kernels": compiled_kernels.kernels if compiled else None,
            "compiled_busy": busy_share(compiled_kernels, c) if compiled else None}


def plan_for(setting: str, args) -> Plan:
    plan = PLANS[setting, args.quick]
    return Plan(log_every=args.log_every or plan.log_every, reads=args.reads or plan.reads,
                repeat=args.repeat or plan.repeat)


def check_overrides(overrides: list[str]) -> None:
    """One line, before any run, for overrides the config does not take or a run would
    refuse (`validate`: a rate of nan, an unknown key)."""
    try:
        validate(root_config(*overrides, "run_dir=unused"))
    except (HydraException, ConfigError) as exc:
        raise GansweepError(f"--overrides {' '.join(overrides)}: "
                            f"{str(exc).splitlines()[0]}") from None


def run(args) -> list[dict]:
    check_overrides(args.overrides)
    rows = []
    # inductor's CPU kernels named in the profiler, for `KernelCounter` (graphs compiled here)
    with tempfile.TemporaryDirectory() as tmp, \
            inductor_config.patch({"cpp.enable_kernel_profile": True}):
        for setting in args.settings:
            plan = plan_for(setting, args)
            for norm in args.norms:
                for penalty in args.penalties:
                    rows.append(measure(setting, norm, plan, Path(tmp), args.compile, penalty,
                                        tuple(args.overrides)))
    return rows


def add_arguments(parser) -> None:
    parser.add_argument("--quick", action="store_true",
                        help="fewer iterations and repeats: rougher ratios")
    parser.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    parser.add_argument("--norms", nargs="+", default=NORMS, choices=sorted(VARIANTS))
    parser.add_argument("--log-every", type=positive_int,
                        help="train.log_every (default: by setting)")
    parser.add_argument("--reads", type=positive_int,
                        help="timed reads of the losses: the window is reads x log_every "
                        "iterations (default: by setting)")
    parser.add_argument("--repeat", type=positive_int,
                        help="interleaved repeats (default: by setting)")
    parser.add_argument("--penalties", nargs="+", default=["none"], choices=PENALTIES,
                        help="also time each norm with these gradient penalties (e.g. none "
                        "wgan_gp dragan), with their cost as ratios to none")
    parser.add_argument("--compile", metavar="MODE", choices=COMPILE_MODES,
                        help="also time train.compile=MODE (e.g. default, reduce-overhead)")
    parser.add_argument("--overrides", nargs="+", default=[], metavar="KEY=VALUE",
                        help="Hydra overrides for every run, both loops (e.g. "
                        "+train.optimizer.foreach=true: RMSProp as on a GPU)")


def report(rows: list[dict], args) -> None:
    print(f"gansweep vs a hand-written loop of the same networks, batch 32, on {device_name()}"
          f"{' (quick)' if args.quick else ''}"
          f"{''.join(f', {o}' for o in args.overrides)}; "
          f"medians of interleaved repeats:")
    print("| setting | norm | hand ms/it | gansweep ms/it | ratio | hand ops/it | "
          "gansweep ops/it | syncs/it | hand kernels/it | gansweep kernels/it | "
          "GPU busy hand | GPU busy gansweep |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        syncs = "-" if r["syncs_per_iter"] is None else f"{r['syncs_per_iter']:.2f}"
        print(f"| {r['setting']} | {label(r)} | {1000 * r['hand_s']:.1f} | "
              f"{1000 * r['gansweep_s']:.1f} | {r['ratio']:.3f} | {r['hand_ops']} | "
              f"{r['gansweep_ops']} | {syncs} | {r['hand_kernels']} | {r['gansweep_kernels']} | "
              f"{percent(r['hand_busy'])} | {percent(r['gansweep_busy'])} |")
    if args.compile:
        print(f"train.compile={args.compile} (first iteration: the compilation, first repeat; "
              f"later repeats reuse inductor's on-disk cache):")
        print("| setting | norm | eager ms/it | compiled ms/it | compiled / eager | "
              "compiled / hand | first iteration s | eager ops/it | compiled kernels/it | "
              "eager kernels/it | GPU busy eager | GPU busy compiled |")
        print("|---|---|---|---|---|---|---|---|---|---|---|---|")
        for r in (r for r in rows if r["compiled_s"] is not None):
            print(f"| {r['setting']} | {label(r)} | {1000 * r['gansweep_s']:.1f} | "
                  f"{1000 * r['compiled_s']:.1f} | {r['compiled_s'] / r['gansweep_s']:.3f} | "
                  f"{r['compiled_ratio']:.3f} | {r['compile_s']:.1f} | {r['gansweep_ops']} | "
                  f"{r['compiled_kernels']} | {r['gansweep_kernels']} | "
                  f"{percent(r['gansweep_busy'])} | {percent(r['compiled_busy'])} |")
    for setting in dict.fromkeys(r["setting"] for r in rows):
        by_norm = {r["norm"]: r for r in rows
                   if r["setting"] == setting and r["penalty"] == "none"}
        if "vanilla" in by_norm:
            base = by_norm["vanilla"]
            for norm, r in by_norm.items():
                if norm != "vanilla":
                    print(f"{setting}: {norm} / vanilla (gansweep): "
                          f"{r['gansweep_s'] / base['gansweep_s']:.2f}x time, "
                          f"{r['gansweep_ops'] / base['gansweep_ops']:.2f}x ops")
                    if r["compiled_kernels"] and base["compiled_kernels"]:
                        print(f"{setting}: {norm} / vanilla (compiled): "
                              f"{r['compiled_s'] / base['compiled_s']:.2f}x time, "
                              f"{r['compiled_kernels'] / base['compiled_kernels']:.2f}x kernels")
    for r in rows:
        without = next((o for o in rows if (o["setting"], o["norm"], o["penalty"])
                        == (r["setting"], r["norm"], "none")), None)
        if r["penalty"] != "none" and without is not None:
            print(f"{r['setting']}: {r['norm']} with {r['penalty']} / without (gansweep): "
                  f"{r['gansweep_s'] / without['gansweep_s']:.2f}x time, "
                  f"{r['gansweep_ops'] / without['gansweep_ops']:.2f}x ops")


def percent(share: float | None) -> str:
    """A share as a percentage; "-" where there is none (the GPU's busy share on a CPU)."""
    return "-" if share is None else f"{100 * share:.0f}%"


def label(row: dict) -> str:
    """A row's norm, and its penalty where it has one."""
    return row["norm"] if row["penalty"] == "none" else f"{row['norm']} + {row['penalty']}"
