"""Every GPU figure docs/benchmarks.md quotes, measured in one call of `launch/gpu_check.sh`.

    bash launch/gpu_check.sh OUT_DIR             # on a CUDA machine: at most 8 minutes
    bash launch/gpu_check.sh --dry-run OUT_DIR   # anywhere: every step at tiny sizes

The shell script runs this module, from the tree, before anything else is installed (so it
imports nothing beyond the standard library). It installs what the machine lacks from a
folder of wheels, and gansweep itself as a user installs it, into a scratch folder the steps
get on PYTHONPATH (`install`), then runs each step (`STEPS`) as a process of its own, under
its own time limit, away from the tree: a step that overruns is killed with everything it
started, recorded as "timed out", and the next one runs. A step's figures come from its own
files (`--json` for the benchmarks, JUnit XML for the tests), so a step that fails or
overruns cannot spoil another's. It writes `gpu_check.json` (every figure, the commands,
the environment) and `gpu_check.md` (one table) into OUT_DIR, the install's and each step's
output to `steps.log`, and prints the table last.

The limits add up to the 8 minutes a lent GPU's check may take (`BUDGET_S`, the install
included); a dry run passes tiny sizes to the same commands, and a test runs it on a CPU.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

BUDGET_S = 480  # the whole check on a lent GPU, the install included
INSTALL_LIMIT_S = 20  # each of the two pip installs
PROBE_LIMIT_S = 20
MODULE = [sys.executable, "-m", "gansweep.benchmark"]
# what a run imports, by import name -> distribution, that a GPU image may lack
NEEDED = {"hydra": "hydra-core", "omegaconf": "omegaconf", "antlr4": "antlr4-python3-runtime",
          "wandb": "wandb", "submitit": "submitit", "lmdb": "lmdb",
          "torch_fidelity": "torch-fidelity", "pydantic": "pydantic"}
# what pip needs to build gansweep as a user installs it (conf/ becomes gansweep.conf)
SOURCES = ("pyproject.toml", "README.md", "gansweep", "conf")


@dataclass(frozen=True)
class Step:
    """One measurement: its command's arguments on a GPU and in a dry run, its limit."""
    name: str
    kind: str  # "tests" or a benchmark's name (how its figures are read and summarised)
    gpu: tuple[str, ...]
    dry: tuple[str, ...]
    limit_s: int


def train_step(norm: str, dry_compiles: bool) -> Step:
    """DCGAN-64 (the paper's) eager and with CUDA graphs, against the hand-written loop."""
    compiled = ("--compile", "reduce-overhead")
    return Step(f"train {norm}", "train",
                gpu=("train", "--settings", "dcgan64", "--norms", norm, "--log-every", "10",
                     "--reads", "3", "--repeat", "2", *compiled),
                # inductor's CPU compile takes ~30 s a norm here: one norm exercises it
                dry=("train", "--settings", "digits", "--norms", norm, "--log-every", "2",
                     "--reads", "1", "--repeat", "1", *compiled * dry_compiles),
                limit_s=70)


STEPS = (
    Step("tests", "tests", gpu=(), dry=(), limit_s=120),
    train_step("wn", dry_compiles=True),
    train_step("vanilla", dry_compiles=False),
    train_step("bn", dry_compiles=False),
    Step("packed", "packed",
         gpu=("packed", "--settings", "dcgan64", "--norms", "wn",
              "--copies", "1", "2", "4", "8", "16"),
         dry=("packed", "--settings", "digits", "--norms", "wn", "--copies", "1", "2",
              "--quick"),
         limit_s=25),
    Step("evaluator", "recon",
         gpu=("recon", "--norm", "wn", "--steps", "50", "--repeat", "3"),
         dry=("recon", "--norm", "wn", "--image-size", "32", "--width", "8", "--n-images",
              "16", "--steps", "2"),
         limit_s=30),
    Step("sample quality", "quality",
         gpu=("quality", "--repeat", "3"),
         dry=("quality", "--final-steps", "2", "quality.n_samples=100", "recon.n_images=16",
              "final.n_images=16"),
         limit_s=30),
)


def command(step: Step, dry_run: bool, repo: Path, figures: Path) -> list[str]:
    if step.kind == "tests":
        # the tests' own directory is on sys.path for conftest; gansweep is the installed one
        # -v: each test's outcome in the log as it ends, should the step run out of time
        return [sys.executable, "-m", "pytest", str(repo / "tests" / "test_gpu.py"), "-v",
                "-p", "no:cacheprovider", f"--rootdir={repo}", f"--junitxml={figures}"]
    return [*MODULE, *(step.dry if dry_run else step.gpu), "--json", str(figures)]


def run_limited(cmd: list[str], limit_s: float, log, cwd: Path, env=None) -> tuple[str, float]:
    """Runs `cmd` in its own process group; past `limit_s` the whole group is killed (a
    step's W&B service and compile workers too). ("ok" | "failed" | "timed out", seconds)."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=cwd, env=env,
                            start_new_session=True)
    try:
        code = proc.wait(timeout=limit_s)
    except subprocess.TimeoutExpired:
        code = None
    _kill_group(proc)
    seconds = time.perf_counter() - start
    return ("timed out" if code is None else "ok" if code == 0 else "failed"), seconds


def _kill_group(proc: subprocess.Popen) -> None:
    """What a step leaves running (W&B's service, compile workers) goes with it."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


def read_figures(kind: str, path: Path, said: list[str]):
    """A step's figures from its file; None where it wrote none (it failed or overran),
    but for the tests: those that ended before pytest was stopped, from its -v lines."""
    if kind == "tests":
        return tests_from_junit(path) if path.exists() else tests_from_log(said)
    return json.loads(path.read_text())["result"] if path.exists() else None


def tests_from_junit(path: Path) -> dict:
    suite = ET.parse(path).getroot()
    suite = suite if suite.tag == "testsuite" else suite.find("testsuite")
    counts = {k: int(suite.get(k, 0)) for k in ("tests", "failures", "errors", "skipped")}
    failed = [case.get("name") for case in suite.iter("testcase")
              if case.find("failure") is not None or case.find("error") is not None]
    return {**counts, "passed": counts["tests"] - counts["failures"] - counts["errors"]
            - counts["skipped"], "failed_tests": failed, "partial": False}


def tests_from_log(said: list[str]) -> dict | None:
    """pytest -v's "path::test OUTCOME" lines: the tests that ended, when no report came."""
    outcomes = {}
    for line in said:
        found = re.search(r"::(\S+) (PASSED|FAILED|ERROR|SKIPPED|XFAIL|XPASS)\b", line)
        if found:
            outcomes[found[1]] = found[2]
    if not outcomes:
        return None
    failed = [name for name, outcome in outcomes.items() if outcome in ("FAILED", "ERROR")]
    skipped = sum(outcome == "SKIPPED" for outcome in outcomes.values())
    return {"tests": len(outcomes), "failures": len(failed), "errors": 0, "skipped": skipped,
            "passed": len(outcomes) - len(failed) - skipped, "failed_tests": failed,
            "partial": True}


def said_since(log: Path, start: int) -> list[str]:
    """What a step said: the log's non-empty lines from byte `start`, the check's own out."""
    with open(log, "rb") as f:
        f.seek(start)
        lines = [line.strip() for line in f.read().decode(errors="replace").splitlines()]
    return [line for line in lines if line and not line.startswith("== ")]


def ms(seconds: float) -> str:
    return f"{1000 * seconds:.1f} ms"


def pct(share) -> str:
    return "-" if share is None else f"{100 * share:.0f}%"


def summarise(kind: str, figures) -> str:
    """A step's figures in one table cell."""
    if figures is None:
        return "-"
    if kind == "tests":
        said = (f"{figures['passed']} passed, {figures['failures'] + figures['errors']} failed, "
                f"{figures['skipped']} skipped")
        said += " before it was stopped" * bool(figures.get("partial"))
        return said + "".join(f"; failed: {name}" for name in figures["failed_tests"])
    if kind == "train":
        parts = []
        for r in figures:
            eager = (f"eager {ms(r['gansweep_s'])}/it ({r['ratio']:.2f}x the hand loop's "
                     f"{ms(r['hand_s'])}), {r['gansweep_kernels']} kernels/it (hand "
                     f"{r['hand_kernels']}), GPU busy {pct(r['gansweep_busy'])} (hand "
                     f"{pct(r['hand_busy'])})")
            if r["syncs_per_iter"] is not None:
                eager += f", {r['syncs_per_iter']:.2f} syncs/it"
            parts.append(eager)
            if r["compiled_s"] is not None:
                parts.append(f"reduce-overhead {ms(r['compiled_s'])}/it "
                             f"({r['compiled_s'] / r['gansweep_s']:.2f}x eager), "
                             f"{r['compiled_kernels']} launches/it, GPU busy "
                             f"{pct(r['compiled_busy'])}, first iteration {r['compile_s']:.0f} s")
        return "; ".join(parts)
    if kind == "packed":
        return "; ".join(f"K={r['copies']}: {r['packed_models_per_s']:.0f} model-it/s packed, "
                         f"{r['apart_models_per_s']:.0f} apart "
                         f"({r['packed_models_per_s'] / r['apart_models_per_s']:.2f}x), "
                         f"peak {r['packed_peak_mib']:.0f} MiB" for r in figures)
    if kind == "recon":
        return (f"{figures['setting']}: evaluator {figures['batched_s']:.2f} s, the paper's "
                f"loop {figures['paper_loop_s']:.2f} s ({figures['speedup_vs_paper']:.1f}x), "
                f"evaluator / floor {figures['batched_over_floor']:.2f}; GAN iteration "
                f"{ms(figures['train_iter_s'])}; a 50-step running test every 1000 iterations "
                f"{pct(figures['running_test_share'])} of training")
    if kind == "quality":
        s = figures["seconds"]
        shares = figures["default_schedule"]["shares"]
        return (f"{figures['setting']}: sample quality {s['sample quality']:.2f} s ("
                + ", ".join(f"{m} {t:.2f} s" for m, t in figures["per_metric_s"].items())
                + f"), running test {s['running test']:.2f} s, final test "
                f"{s['final test']:.1f} s, GAN iteration {ms(s['training'])}; shares of the "
                f"default run: evaluation {pct(1 - shares['training'])}, sample quality "
                f"{pct(shares['sample quality'] + shares['quality set-up'])}")
    raise ValueError(f"no summary for {kind!r}")


def markdown(report: dict) -> str:
    env = report["environment"] or {}
    dry = report["dry_run"]
    lines = [(f"GPU check{' (dry run: tiny sizes, not figures)' if dry else ''} "
              f"on {env.get('device', 'an unknown device')}, torch {env.get('torch', '?')}, "
              f"{report['started']}; {report['seconds']:.0f} s in all "
              f"(`bash launch/gpu_check.sh{' --dry-run' if dry else ''} OUT_DIR`)"),
             "", "| step | status | seconds (limit) | figures |", "|---|---|---|---|"]
    install = report["install"]
    unmet = env.get("unmet_requirements", ["(the environment probe failed: see steps.log)"])
    lines.append(f"| install | {install['status']} | {install['seconds']:.0f} "
                 f"({install['limit_s']}) | from the wheels: "
                 f"{', '.join(install['installed']) or 'nothing missing'}; gansweep from the "
                 f"tree; unmet requirements: {'; '.join(unmet) or 'none'} |")
    for step in report["steps"]:
        figures = summarise(step["kind"], step["figures"])
        if step.get("last_line"):
            figures += f" (last said: {step['last_line'].replace('|', '/')})"
        lines.append(f"| {step['name']} | {step['status']} | {step['seconds']:.0f} "
                     f"({step['limit_s']}) | {figures} |")
    return "\n".join(lines) + "\n"


def probe() -> None:
    """Prints, as JSON, what this process sees: the device, the versions that matter, and
    the requirements of what `launch/gpu_check.sh` installed that nothing here meets."""
    from importlib import metadata

    import torch
    from packaging.requirements import Requirement

    import gansweep
    import gansweep.job  # imports everything a run imports
    from gansweep.benchmark.common import device_name

    def version(name: str) -> str | None:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return None

    unmet = []
    site = os.environ.get("GANSWEEP_CHECK_SITE")
    for dist in metadata.distributions(path=[site] if site else []):
        for text in dist.requires or []:
            req = Requirement(text)
            if req.marker is not None and not req.marker.evaluate({"extra": ""}):
                continue
            have = version(req.name)
            if have is None or not req.specifier.contains(have, prereleases=True):
                unmet.append(f"{dist.metadata['Name']} needs {req} (here: {have})")
    print(json.dumps({
        "device": device_name(), "python": sys.version.split()[0], "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "versions": {name: version(name) for name in (
            "torchvision", "lightning", "torchmetrics", "torch-fidelity", "hydra-core",
            "omegaconf", "wandb", "submitit", "gansweep")},
        "gansweep_from": str(Path(gansweep.__file__).parent), "unmet_requirements": unmet}))


def environment(log, cwd: Path, env: dict) -> dict | None:
    """`probe()`'s answer from a process of its own: this one never touches the GPU, so the
    steps measure a device nothing else holds."""
    start = time.perf_counter()
    try:
        code = "from gansweep.benchmark.gpu_check import probe; probe()"
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              timeout=PROBE_LIMIT_S, cwd=cwd, env=env, check=False)
    except subprocess.TimeoutExpired:
        print(f"== environment: timed out after {PROBE_LIMIT_S} s", file=log, flush=True)
        return None
    print(f"== environment ({time.perf_counter() - start:.1f} s)\n{done.stderr}", file=log,
          flush=True)
    return json.loads(done.stdout) if done.returncode == 0 else None


def missing_distributions() -> list[str]:
    return [dist for module, dist in NEEDED.items() if importlib.util.find_spec(module) is None]


def install(repo: Path, wheels: Path, site: Path, log) -> dict:
    """Installs into `site`, without a network and without dependencies: every wheel in
    `wheels` if this Python lacks something a run imports, then gansweep, built from a copy
    of the tree's sources (pip builds in the folder it is given)."""
    missing, wheel_files, status, start = missing_distributions(), [], "ok", time.perf_counter()
    pip = [sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps",
           "--no-compile", "--no-cache-dir", "--target", str(site)]
    print(f"== install: missing here: {' '.join(missing) or 'nothing'}", file=log, flush=True)
    if missing:
        wheel_files = sorted(wheels.glob("*.whl"))
        if not wheel_files:
            print(f"gpu_check: this Python lacks {' '.join(missing)} and {wheels} holds no "
                  f"wheels: download them with the command at the top of launch/gpu_check.sh",
                  file=sys.stderr)
            status = "failed"
        else:
            status = run_limited([*pip, *map(str, wheel_files)], INSTALL_LIMIT_S, log, site)[0]
    source = site.parent / "gansweep-source"
    source.mkdir()
    for name in SOURCES:
        if (repo / name).is_dir():
            shutil.copytree(repo / name, source / name,
                            ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(repo / name, source / name)
    built = run_limited([*pip, "--no-build-isolation", str(source)], INSTALL_LIMIT_S, log,
                        site)[0]
    status = status if built == "ok" else built
    return {"status": status, "seconds": time.perf_counter() - start, "missing": missing,
            "installed": [w.name.split("-")[0] for w in wheel_files],
            "limit_s": 2 * INSTALL_LIMIT_S}


def check(out: Path, repo: Path, wheels: Path, dry_run: bool) -> dict:
    started = time.perf_counter()
    # the steps' working directory: not the tree (whose gansweep lacks its conf package) nor
    # OUT_DIR (what a device call brings back is a few files)
    with tempfile.TemporaryDirectory(prefix="gansweep-gpu-check-") as scratch:
        report = run_steps(out, repo, wheels, dry_run, Path(scratch))
    report["seconds"] = time.perf_counter() - started
    (out / "gpu_check.json").write_text(json.dumps(report, indent=1))
    table = markdown(report)
    (out / "gpu_check.md").write_text(table)
    print(table, end="")
    return report


def run_step(step: Step, dry_run: bool, repo: Path, work: Path, env: dict, log) -> dict:
    """One step under its limit, in `work`, its output appended to `log` (a file opened for
    appending); its record in the report."""
    figures_file = work / f"{step.name.replace(' ', '_')}.figures"
    cmd = command(step, dry_run, repo, figures_file)
    print(f"== {step.name}: {' '.join(cmd)}", file=log, flush=True)
    print(f"gpu_check: {step.name} (limit {step.limit_s} s)", file=sys.stderr, flush=True)
    said_from = log.tell()
    status, seconds = run_limited(cmd, step.limit_s, log, work, env)
    said = said_since(Path(log.name), said_from)
    print(f"== {step.name}: {status} in {seconds:.1f} s", file=log, flush=True)
    return {"name": step.name, "kind": step.kind, "command": " ".join(cmd[1:]),
            "limit_s": step.limit_s, "status": status, "seconds": seconds,
            "figures": read_figures(step.kind, figures_file, said),
            "last_line": said[-1][:300] if status != "ok" and said else None}


def run_steps(out: Path, repo: Path, wheels: Path, dry_run: bool, scratch: Path) -> dict:
    """The install, the environment's probe and every step; the report without its total."""
    site, work = scratch / "site", scratch / "work"
    site.mkdir()
    work.mkdir()
    report = {"dry_run": dry_run, "started": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
              "steps": []}
    with open(out / "steps.log", "a") as log:
        print(f"gpu_check: installing (limit 2 x {INSTALL_LIMIT_S} s)", file=sys.stderr,
              flush=True)
        report["install"] = install(repo, wheels, site, log)
        env = {**os.environ, "GANSWEEP_CHECK_SITE": str(site), "PYTHONPATH": os.pathsep.join(
            [str(site), *filter(None, [os.environ.get("PYTHONPATH")])])}
        report["environment"] = environment(log, work, env)
        for step in STEPS:
            report["steps"].append(run_step(step, dry_run, repo, work, env, log))
    return report


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m gansweep.benchmark.gpu_check",
                                     description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dry-run", action="store_true", help="every step at tiny sizes")
    parser.add_argument("--wheels", type=Path, default=Path(".whl"),
                        help="the folder of wheels for what this Python lacks (default: .whl)")
    parser.add_argument("out", type=Path, help="where the table, the JSON and the log go")
    args = parser.parse_args(argv)
    repo = Path.cwd()
    if not (repo / "launch" / "gpu_check.sh").is_file():
        parser.exit(2, "gpu_check: run it from the repository's root (the folder with "
                       "launch/ and gansweep/): cd there first\n")
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    return check(out, repo, args.wheels.resolve(), args.dry_run)


if __name__ == "__main__":
    report = main()
    # the report is written either way; the exit code says whether every part of it ran
    sys.exit(0 if report["install"]["status"] == "ok"
             and all(step["status"] == "ok" for step in report["steps"]) else 1)
