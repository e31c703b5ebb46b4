"""Speed figures docs/benchmarks.md quotes, measured as ratios within one run (machines are noisy).

    python -m gansweep.benchmark train      # gansweep's loop vs a hand-written one
    python -m gansweep.benchmark recon      # the batched evaluator vs the paper's loop
    python -m gansweep.benchmark data       # each data set's loader vs the training step
    python -m gansweep.benchmark memory     # peak memory of training and of the final test
    python -m gansweep.benchmark packed     # K seeds packed into one network vs apart
    python -m gansweep.benchmark quality    # what evaluation costs a run, each test's share

Each subcommand is a module here with `add_arguments`, `run` and `report`.
"""

from __future__ import annotations

import argparse

from gansweep.benchmark import data, memory, packed, quality, recon, train

BENCHMARKS = {
    "train": (train, "gansweep's training loop against a hand-written one"),
    "recon": (recon, "the batched evaluator against the paper's loop"),
    "data": (data, "each data set's loader against the training step"),
    "memory": (memory, "peak memory of training and of the final test, both archs at 64 px"),
    "packed": (packed, "K seeds packed into one network against K networks apart"),
    "quality": (quality, "what evaluation costs a run: each test's share of its time"),
}


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m gansweep.benchmark", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="what", required=True)
    for name, (module, summary) in BENCHMARKS.items():
        module.add_arguments(sub.add_parser(name, help=summary, description=module.__doc__,
                                            formatter_class=argparse.RawDescriptionHelpFormatter))
    args = parser.parse_args(argv)
    module = BENCHMARKS[args.what][0]
    result = module.run(args)
    module.report(result, args)
    return result
