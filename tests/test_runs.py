"""Run and sweep directory names: deterministic, bounded, free of path separators."""

from gansweep.runs import MAX_NAME, run_name, sweep_name


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
