"""Shared test helpers: compose the real root config, shrunk to a tiny CPU run."""

from __future__ import annotations

import pytest
from hydra import compose, initialize_config_module

import gansweep.runs  # noqa: F401  (resolvers the root config uses)

# A run of a few iterations with tiny networks: seconds on a CPU.
TINY = [
    "train.iters=6", "train.ckpt_every=3", "train.sample_every=3",
    "arch.generator.width=8", "arch.discriminator.width=8", "arch.generator.code_dim=16",
    "recon.every=3", "recon.n_images=8", "recon.steps=5", "final.n_images=16", "final.steps=10",
    "trainer.enable_progress_bar=false",
]


def compose_config(tmp_path, *overrides, tiny: bool = True):
    """The real root config with `overrides`, writing everything under `tmp_path`."""
    with initialize_config_module("gansweep.conf", version_base="1.3"):
        return compose(
            "config",
            overrides=[*(TINY if tiny else []), f"paths.output_dir={tmp_path}",
                       f"run_dir={tmp_path}/run", *overrides],
        )


@pytest.fixture
def make_cfg(tmp_path):
    return lambda *overrides, **kw: compose_config(tmp_path, *overrides, **kw)
