"""A W&B Report that mirrors a sweep's report: `python -m gansweep.report SWEEP_DIR
--wandb-report ENTITY/PROJECT` (built with W&B's `wandb-workspaces`, `pip install -e
'.[wandb-report]'`).

The report holds the sweep's table and comparisons as text, then one panel grid over the
sweep's W&B runs (those of its group, as gansweep.tracking names it), grouped by the compared
setting: the running reconstruction error against the GAN iteration (a mean line and a
min-max band per value), the sample grids, and the runs table with each run's best iteration,
running and final loss. Saving it needs W&B online (`wandb login`, runs synced); `--dry-run`
writes its spec as JSON instead, with no account and no network.
"""

from __future__ import annotations

import dataclasses

from gansweep.errors import GansweepError

X, Y = "trainer/iter", "recon/running"  # gansweep.tracking's step metric and running test
SAMPLES = "samples"  # the key of the sample grids (gansweep.callbacks)
RESULTS = ["best_iter", "running_loss", "final_loss", "status"]  # each run's summary keys


def workspaces():
    try:
        import wandb_workspaces.reports.v2 as wr
    except ImportError:
        raise GansweepError("--wandb-report needs W&B's wandb-workspaces: "
                            "pip install -e '.[wandb-report]'") from None
    return wr


def config_key(setting: str) -> str:
    """A setting's key in W&B's backend: runs log their config flat (`train.lr`, `norm`),
    and each value sits under `.value`."""
    return f"{setting}.value"


def build(runs: list[dict], entity: str, project: str, compare: str, text: str, title: str):
    """The W&B Report (not saved) of `runs`, grouped by `compare`; `text`: the markdown of
    the table and the comparisons."""
    wr = workspaces()
    groups = sorted({r["wandb_group"] for r in runs if r.get("wandb_group")})
    if not groups:
        raise GansweepError("no run of this report has a W&B group to filter by")
    listed = ", ".join(repr(g) for g in groups)
    runset = wr.Runset(
        entity=entity, project=project, name="this sweep's runs",
        filters=f"Group = {listed}" if len(groups) == 1 else f"Group in [{listed}]",
        groupby=[f"config.{config_key(compare)}"],
        pinned_columns=["run:displayName", f"config:{config_key(compare)}",
                        "config:seed.value", *(f"summary:{k}" for k in RESULTS)])
    panels = [
        wr.LinePlot(title="running reconstruction error", x=X, y=[Y],
                    groupby=wr.Config(config_key(compare)), groupby_aggfunc="mean",
                    groupby_rangefunc="minmax", title_x="GAN iteration",
                    layout=wr.Layout(w=16, h=8)),
        wr.MediaBrowser(title="samples", media_keys=[SAMPLES], num_columns=4,
                        layout=wr.Layout(x=16, w=8, h=8)),
    ]
    return wr.Report(
        entity=entity, project=project, title=title[:128],
        description=f"gansweep: variants compared by {compare}",
        blocks=[wr.MarkdownBlock(text=text), wr.PanelGrid(runsets=[runset], panels=panels)])


def spec(thing):
    """The report as plain data: each block, panel and runset with its type and the fields
    set on it (the server's own form needs the project's id from the server)."""
    if dataclasses.is_dataclass(thing) and not isinstance(thing, type):
        fields = {f.name: spec(getattr(thing, f.name)) for f in dataclasses.fields(thing)
                  if not f.name.startswith("_")}
        return {"type": type(thing).__name__,
                **{k: v for k, v in fields.items() if v not in (None, [], {}, "")}}
    if isinstance(thing, (list, tuple)):
        return [spec(t) for t in thing]
    if isinstance(thing, dict):
        return {k: spec(v) for k, v in thing.items()}
    return thing


def save(report) -> str:
    """Saves the report to W&B; its URL."""
    try:
        report.save()
        return report.url
    except Exception as error:  # noqa: BLE001  not logged in, offline, no such entity...
        raise GansweepError(
            f"could not save the W&B Report to {report.entity}/{report.project}: {error}; "
            f"it needs W&B online (`wandb login`, and `wandb sync` for offline runs), or "
            f"use --dry-run to write its spec") from None
