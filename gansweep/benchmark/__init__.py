"""Speed figures docs/benchmarks.md quotes, measured as ratios within one run (machines are noisy).

    python -m gansweep.benchmark train      # gansweep's loop vs a hand-written one
    python -m gansweep.benchmark recon      # the batched evaluator vs the paper's loop
    python -m gansweep.benchmark data       # each data set's loader vs the training step
    python -m gansweep.benchmark memory     # peak memory of training and of the final test
    python -m gansweep.benchmark packed     # K seeds packed into one network vs apart
    python -m gansweep.benchmark quality    # what evaluation costs a run, each test's share

Each subcommand is a module here with `add_arguments`, `run` and `report`; `--json FILE`
after any of them also writes its figures there (what `launch/gpu_check.sh` collects).
"""

from __future__ import annotations

import argparse
import importlib
import json
from pathlib import Path

BENCHMARKS = {
    "train": "gansweep's training loop against a hand-written one",
    "recon": "the batched evaluator against the paper's loop",
    "data": "each data set's loader against the training step",
    "memory": "peak memory of training and of the final test, both archs at 64 px",
    "packed": "K seeds packed into one network against K networks apart",
    "quality": "what evaluation costs a run: each test's share of its time",
}


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m gansweep.benchmark", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="what", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", type=Path, metavar="FILE",
                        help="also write the figures to FILE as JSON")
    # imported here, not above: `gpu_check` imports this package before what the benchmarks
    # import (hydra, wandb) is installed
    modules = {name: importlib.import_module(f"gansweep.benchmark.{name}") for name in BENCHMARKS}
    for name, summary in BENCHMARKS.items():
        module = modules[name]
        module.add_arguments(sub.add_parser(name, help=summary, description=module.__doc__,
                                            parents=[common],
                                            formatter_class=argparse.RawDescriptionHelpFormatter))
    args = parser.parse_args(argv)
    module = modules[args.what]
    result = module.run(args)
    module.report(result, args)
    if args.json:
        args.json.write_text(json.dumps({"benchmark": args.what, "result": result}, indent=1))
    return result
