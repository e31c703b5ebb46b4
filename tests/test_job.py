"""One path through a job for one seed or many (gansweep/job.py): what a run's callbacks may
use of their module and trainer, how each seed is seeded, what extra callbacks see."""

import gc
import random
import weakref

import lightning as L
import numpy as np
import pytest
import torch
from conftest import compose_config, train_packed, train_run

from gansweep.job import build_group, run_dirs
from gansweep.run import run_config
from gansweep.training.callbacks import RunModule, RunTrainer
from gansweep.training.gan import GAN
from gansweep.training.packed import EachSeed, SeedModule, SeedTrainer, packed_gan_factory


def members(protocol) -> set[str]:
    """The names a Protocol declares: its annotated attributes and its methods."""
    return set(protocol.__annotations__) | {
        n for n, v in vars(protocol).items() if callable(v) and not n.startswith("_")}


def public(obj) -> set[str]:
    return {n for n in dir(obj) if not n.startswith("_")}


def built(tmp_path, *overrides):
    """The group `cfg` builds (its runs' configs and directories made, nothing trained)."""
    cfg = compose_config(tmp_path, *overrides)
    dirs = run_dirs(cfg)
    configs = {}
    for seed, run_dir in dirs.items():
        run_dir.mkdir(parents=True, exist_ok=True)
        configs[seed] = run_config(cfg, seed, run_dir)
    group = build_group(cfg, configs, dirs)
    group.model.trainer = group.trainer  # as fit() attaches it
    return group


def test_a_packed_seeds_views_are_the_callbacks_contract_and_no_more(tmp_path):
    group = built(tmp_path, "train.seeds=[0,1]")
    for run in group.runs:
        assert isinstance(run.module, SeedModule) and isinstance(run.trainer, SeedTrainer)
        assert isinstance(run.module, RunModule) and isinstance(run.trainer, RunTrainer)
        # nothing else to reach: a callback using more fails alone and packed alike
        assert public(run.module) == members(RunModule)
        assert public(run.trainer) == members(RunTrainer)
    assert "__getattr__" not in vars(SeedModule) and "__getattr__" not in vars(SeedTrainer)
    # a run alone gives its callbacks the GAN and Lightning's Trainer, which are the contract
    (alone,) = built(tmp_path / "alone").runs
    assert type(alone.module) is GAN and type(alone.trainer) is L.Trainer
    assert isinstance(alone.module, RunModule) and isinstance(alone.trainer, RunTrainer)


def test_a_packed_seeds_callbacks_see_their_own_run(tmp_path):
    group = built(tmp_path, "train.seeds=[0,1]")
    (each,) = [c for c in group.trainer.callbacks if isinstance(c, EachSeed)]
    assert each.callbacks == [run.writers.in_order() for run in group.runs]
    assert [t.loggers for t in each.trainers] == [[run.logger] if run.logger else []
                                                  for run in group.runs]
    group.model.diverged[1] = 4  # seed 1 diverged; seed 0 is live
    assert [run.module.diverged_at for run in group.runs] == [None, 4]
    assert [run.module.iteration for run in group.runs] == [0, 4]
    group.runs[1].trainer.should_stop = True  # one seed stopping does not stop the job ...
    assert not group.trainer.should_stop
    group.model.diverged[0] = 5
    group.runs[0].trainer.should_stop = True  # ... the last live one does
    assert group.trainer.should_stop


def global_rngs() -> tuple:
    return (random.getstate(), np.random.get_state()[1].tolist(), torch.get_rng_state())


@pytest.mark.parametrize("seed", [0, 3])
def test_a_packed_seed_is_built_from_the_global_rngs_its_run_alone_has(tmp_path, monkeypatch,
                                                                       seed):
    import gansweep.training.gan

    seen = []  # the global RNGs each time a G is built
    build = gansweep.training.gan.instantiate

    def recording(node, *args, **kwargs):
        if node is not None and "generator" in str(node.get("_target_", "")).lower():
            seen.append(global_rngs())
        return build(node, *args, **kwargs)

    monkeypatch.setattr(gansweep.training.gan, "instantiate", recording)
    built(tmp_path / "alone", f"seed={seed}")
    (alone,) = seen
    seen.clear()
    built(tmp_path / "packed", "train.seeds=[0,3]")
    packed = seen[1 + [0, 3].index(seed)]  # after the packed module's own, unused G
    assert len(seen) == 3
    assert packed[0] == alone[0]  # python's random
    assert packed[1] == alone[1]  # numpy's
    assert torch.equal(packed[2], alone[2])  # torch's


def test_a_packed_seeds_unpacked_generator_lives_only_while_it_is_used(tmp_path):
    cfg = compose_config(tmp_path, "train.seeds=[0,1]")
    model = packed_gan_factory(cfg, [0, 1])(2)
    # no second set of weights per seed: only the packed networks are held
    assert [name for name, _ in model.named_children()] == ["generator", "discriminator"]
    assert not any(isinstance(v, torch.nn.Module) or (isinstance(v, list) and v and
                   isinstance(v[0], torch.nn.Module)) for v in vars(model).values())
    codes = model.fixed_codes[1][:4]
    with model.generator_of(1) as generator:
        kept = weakref.ref(generator)
        assert next(generator.parameters()).device == next(model.parameters()).device
        alone = generator.eval()(codes)
    packed = model.generator.eval()(model.fixed_codes[:, :4])[1]
    assert torch.allclose(alone, packed, atol=1e-5)
    del generator
    gc.collect()
    assert kept() is None  # gone once the block ended


class Seen(L.Callback):
    """What an extra callback of `train()` sees at each iteration."""

    def __init__(self):
        self.calls = []

    def on_train_batch_end(self, trainer, pl_module, *args):
        dirs = getattr(pl_module, "seeds", None)
        self.calls.append((type(pl_module).__name__, pl_module.iteration, dirs))


@pytest.mark.slow
def test_extra_callbacks_have_one_meaning_whatever_the_number_of_seeds(tmp_path):
    """They see the job's module, once per iteration, after every run's own callbacks (so
    the checkpoint of iteration 3 is on disk when they see 3), for one seed or two."""
    class LastCheckpointSeen(Seen):
        def __init__(self, lasts):
            super().__init__()
            self.lasts = lasts

        def on_train_batch_end(self, trainer, pl_module, *args):
            super().on_train_batch_end(trainer, pl_module, *args)
            if pl_module.iteration == 3:
                self.at_3 = [p.exists() for p in self.lasts]

    one_cfg = compose_config(tmp_path / "one")
    one = LastCheckpointSeen([tmp_path / "one" / "run" / "checkpoints" / "last.ckpt"])
    train_run(one_cfg, callbacks=[one])
    two = LastCheckpointSeen([tmp_path / "two" / "run" / f"seed={s}" / "checkpoints" /
                              "last.ckpt" for s in (0, 1)])
    train_packed(tmp_path / "two", [0, 1], callbacks=[two])
    assert [(name, i) for name, i, _ in one.calls] == [("GAN", i) for i in range(1, 7)]
    assert [(name, i) for name, i, _ in two.calls] == [("PackedGAN", i) for i in range(1, 7)]
    assert one.at_3 == [True] and two.at_3 == [True, True]
