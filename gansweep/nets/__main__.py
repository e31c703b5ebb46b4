"""`python -m gansweep.nets [--image-size 64]`: parameters of every arch x norm pair.

Built from the real configs (`conf/arch/*.yaml`, `conf/norm/*.yaml`) as a run would build them.
"""

import argparse
from importlib import resources

from hydra import compose, initialize_config_module
from hydra.utils import instantiate

import gansweep.rundir.names  # noqa: F401  (resolvers the root config uses)


def choices(group: str) -> list[str]:
    folder = resources.files("gansweep.conf") / group
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".yaml"))


def parameter_counts(image_size: int) -> list[tuple[str, str, int, int]]:
    rows = []
    with initialize_config_module("gansweep.conf", version_base="1.3"):
        for arch in choices("arch"):
            for norm in choices("norm"):
                # celeba: a 64 px data set whose arch settings are the paper's defaults
                cfg = compose("config", overrides=[f"arch={arch}", f"norm={norm}",
                                                   "dataset=celeba"])
                shape = dict(norm=norm, image_size=image_size, channels=3)
                g = instantiate(cfg.arch.generator, **shape)
                d = instantiate(cfg.arch.discriminator, **shape)
                rows.append((arch, norm, sum(p.numel() for p in g.parameters()),
                             sum(p.numel() for p in d.parameters())))
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m gansweep.nets", description=__doc__)
    parser.add_argument("--image-size", type=int, default=64)
    args = parser.parse_args(argv)
    print(f"parameters at {args.image_size} px, default arch settings")
    print("| arch | norm | G | D |\n|---|---|---|---|")
    for arch, norm, g, d in parameter_counts(args.image_size):
        print(f"| {arch} | {norm} | {g:,} | {d:,} |")


if __name__ == "__main__":
    main()
