"""A W&B Report that mirrors a sweep's report: `python -m gansweep.report SWEEP_DIR
--wandb-report ENTITY/PROJECT` (built with W&B's `wandb-workspaces`, `pip install -e
'.[wandb-report]'`).

The report holds the sweep's table and comparisons as text, then one panel grid over the
sweep's W&B runs (those of its group, as gansweep.training.wandb_logger names it), grouped by
the compared setting: the running reconstruction error against the GAN iteration (a mean line
and a min-max band per value), the sample grids, each sample-quality series the runs logged
(`quality/fid[digits-classifier]`...) likewise, and the runs table with each run's best
iteration, running and final loss, and final FID/KID with the network of their features.
Saving it needs W&B online (`wandb login`, runs synced); `--dry-run` writes instead, with no
account and no network, the JSON that saving would send (`viewspec`).
Group names are those of `runs.wandb_group`, which W&B's filter grammar leaves as they are.
"""

from __future__ import annotations

from gansweep.errors import GansweepError
from gansweep.report.tracking import quality_metrics
from gansweep.rundir import records

# the W&B logger's (gansweep.training.wandb_logger) step metric and running test
X, Y = "trainer/iter", "recon/running"
SAMPLES = "samples"  # the key of the sample grids (gansweep.training.callbacks)
QUALITY = "quality"  # the prefix of the sample-quality series (callbacks.SampleQuality)


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


def pinned_columns(compare: str, runs: list[dict]) -> list[str]:
    """The runs table's columns: the run, its compared setting and seed, its results (the
    sample-quality ones, and their features' network, where the runs measured them)."""
    keys = list(dict.fromkeys(r.key for r in records.result_columns(runs)))
    quality = ["quality_features"] * any(r.get("quality_features") for r in runs)
    return ["run:displayName", f"config:{config_key(compare)}", "config:seed.value",
            *(f"summary:{k}" for k in [*keys, *quality]), "summary:status"]


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
        pinned_columns=pinned_columns(compare, runs))
    panels = [
        wr.LinePlot(title="running reconstruction error", x=X, y=[Y],
                    groupby=wr.Config(config_key(compare)), groupby_aggfunc="mean",
                    groupby_rangefunc="minmax", title_x="GAN iteration",
                    layout=wr.Layout(w=16, h=8)),
        wr.MediaBrowser(title="samples", media_keys=[SAMPLES], num_columns=4,
                        layout=wr.Layout(x=16, w=8, h=8)),
        *(wr.LinePlot(title=column, x=X, y=[f"{QUALITY}/{column}"],
                      groupby=wr.Config(config_key(compare)), groupby_aggfunc="mean",
                      groupby_rangefunc="minmax", title_x="GAN iteration",
                      layout=wr.Layout(x=12 * (k % 2), y=8 + 8 * (k // 2), w=12, h=8))
          for k, column in enumerate(quality_metrics(runs))),
    ]
    return wr.Report(
        entity=entity, project=project, title=title[:128],
        description=f"gansweep: variants compared by {compare}",
        blocks=[wr.MarkdownBlock(text=text), wr.PanelGrid(runsets=[runset], panels=panels)])


# What the dry-run's viewspec holds where W&B's server would give the project's internal id
UNKNOWN_PROJECT_ID = "unknown until saved"


def viewspec(report) -> dict:
    """The report in the form `Report.save()` sends to W&B (its ReportViewspec, made by
    wandb-workspaces' own models), with the one value only the server knows, the project's
    internal id, as UNKNOWN_PROJECT_ID. wandb-workspaces has no public way to make that
    form without a server: `_to_model` is where save() makes it."""
    from wandb_workspaces.reports.v2 import interface

    asked = (interface.execute_graphql, interface._get_api)
    interface.execute_graphql = lambda api, query, variables: {
        "project": {"internalId": UNKNOWN_PROJECT_ID}}  # the project id look-up, only
    interface._get_api = lambda: None
    try:
        model = report._to_model()
    finally:
        interface.execute_graphql, interface._get_api = asked
    return model.model_dump(by_alias=True, exclude_none=True, mode="json")


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
