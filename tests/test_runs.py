"""Run and sweep directory names: deterministic, bounded, free of path separators."""

import pytest

from gansweep.rundir.names import MAX_NAME, run_name, sweep_name, wandb_group


def test_run_name_is_the_override_dirname_or_default():
    assert run_name("norm=bn,seed=1") == "norm=bn,seed=1"
    assert run_name("") == "default"
    assert "/" not in run_name("hydra/launcher=slurm,norm=bn")


def test_sweep_name_is_sorted_task_overrides_minus_ignored_keys():
    name = sweep_name(["seed=0,1", "norm=wn,bn", "train.num_workers=4"], ["train.num_workers"])
    assert name == "norm=wn,bn+seed=0,1"
    assert sweep_name([], []) == "default"


def test_long_names_are_bounded_and_stay_distinct():
    a = run_name(",".join(f"key{i}=value" for i in range(60)))
    b = run_name(",".join(f"key{i}=value" for i in range(61)))
    assert len(a) <= MAX_NAME and len(b) <= MAX_NAME and a != b


@pytest.mark.parametrize("sweep", ["norm=vanilla,bn,wn+train.iters=600", "seed=0,1",
                                   "dataset.image_size=choice(7,32)+x=a<b>c"])
def test_a_w_and_b_group_survives_the_filter_grammar_of_w_and_b_reports(sweep):
    """wandb-workspaces' filter parser turns '=' into '==' (and '<', '>' into '<=', '>=')
    inside quoted values too: a group spelled with them would select no run in a Report."""
    from wandb_workspaces import expr

    group = wandb_group(sweep)
    assert expr.expr_to_filters(f"Group = {group!r}").value == group
    assert group == sweep.replace("=", ":").replace("<", "(").replace(">", ")")
