"""The paper's table and figure from any sweep: `python -m gansweep.report SWEEP_DIR`
(or `--wandb ENTITY/PROJECT --out DIR` for the runs of a W&B project).

One row per variant (the norm, plus arch, dataset and any other setting the runs' command lines
gave different values, e.g. `dataset.image_size`; never the seed, whose runs a row pools), with
the paper's columns: best iteration, running loss (the running test at the best iteration)
and final loss (the best checkpoint's final test). Several seeds of a variant give
mean +- std and the number of runs. Diverged runs count as results (up to their divergence)
and say so; runs that did not finish are shown with the iteration they reached, never
dropped. Below the table, a row in one of the paper's settings gets the paper's numbers
beside it (`gansweep.report.paper`), and each pair of variants that differ in one setting
(`--compare`, the norm by default) is compared over their runs: the relative difference of their
losses with a 95% interval and a p-value (`gansweep.report.effects`). Writes `table.md`,
`table.csv`, `table.tex`, `comparisons.csv`, `tracking.csv` (does the reconstruction error
track sample quality: `gansweep.report.tracking`) and `recon.png` (running loss against
iteration; one line per run, or a mean line and a min-max band per variant when it has
several seeds, colour by norm; a marker at each run's best). The table's stability columns
(`gansweep.report.stability`) say how far each variant's running loss rose after its best,
and how many of its runs diverged. A multirun writes and prints the report when it ends
(`SweepReport`, a Hydra callback).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import statistics
import sys
from collections import defaultdict
from difflib import get_close_matches
from pathlib import Path

import yaml
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, ListConfig, OmegaConf

from gansweep.errors import GansweepError, first_line
from gansweep.report.effects import (ABSOLUTE_METHOD, METHOD, absolute_effect, finding,
                                     relative_effect, shown_difference)
from gansweep.report.paper import PAPERS_LOSS, PAPERS_PENALTY, SOURCE, papers_row
from gansweep.report.stability import COLUMNS as STABILITY
from gansweep.report.stability import run_stability, up_to_divergence, variant_stability
from gansweep.report.tracking import tracking, tracking_markdown
from gansweep.rundir import records
from gansweep.rundir.names import result_settings, wandb_group

COMPARED = ("norm", "arch", "dataset")


def read_run(run_dir: Path) -> dict:
    """A run's summary (or, unfinished, what its config and recon.csv say), its series, the
    settings its command line gave it and its W&B group."""
    config = records.read_config(run_dir) if (run_dir / records.CONFIG).exists() \
        else {}  # a run that failed before writing it
    # a sweep's run that raised has failed.json (gansweep/__main__.py)
    run = records.read_summary(run_dir) or records.read_failure(run_dir) \
        or {"status": "unfinished", **records.identity(config)}
    series = up_to_divergence(records.recon_series(run_dir))
    saved = run_dir / ".hydra" / "hydra.yaml"  # runs that `train(cfg)` made directly have none
    hydra = OmegaConf.load(saved).hydra if saved.exists() else None
    return _with_iters_done({**run, "dir": str(run_dir), "series": series,
                             "quality": records.quality_series(run_dir),
                             "settings": result_settings(hydra) if hydra else {},
                             "wandb_group": recorded_group(run_dir, config, hydra),
                             "config": config})


def recorded_group(run_dir: Path, config, hydra: DictConfig | None) -> str:
    """The W&B group gansweep.training.wandb_logger gave a run: `wandb.group`, else its sweep
    directory's name, else (a single run) its own name, as `runs.wandb_group` spells it for W&B."""
    group = OmegaConf.select(config, "wandb.group") if OmegaConf.is_config(config) else None
    if group:
        return wandb_group(str(group))
    if hydra is not None and hydra.mode == "MULTIRUN":  # a job's directory is one level
        return wandb_group(Path(hydra.runtime.output_dir).parent.name)  # below its sweep's
    return wandb_group(Path(run_dir).name)


def _with_iters_done(run: dict) -> dict:
    """A run that never wrote its summary reached the last iteration of its recon series."""
    if run.get("iters_done") is None:
        run["iters_done"] = run["series"][-1][0] if run["series"] else 0
    return run


def collect(sweep_dir: Path) -> list[dict]:
    """Every run under `sweep_dir` (a directory holding a config.yaml, or the failed.json
    of a run that failed before writing one), in name order;
    attempts a run gave up for a restart (`restarts/<k>/`) are part of that run, not runs."""
    dirs = {p.parent for name in ("config.yaml", records.FAILED)
            for p in Path(sweep_dir).rglob(name)
            if ".hydra" not in p.parts and p.parent.parent.name != records.ARCHIVE}
    return [_read_or_unreadable(d) for d in sorted(dirs)]


UNREADABLE = "unreadable"


def _read_or_unreadable(run_dir: Path) -> dict:
    """`read_run`, or for a run whose files cannot be read back, a row saying so: one bad
    run must not keep the table of the others from being made."""
    try:
        return read_run(run_dir)
    except (GansweepError, OSError, ValueError, yaml.YAMLError) as error:
        return {"status": UNREADABLE, "error": first_line(error, 300), "dir": str(run_dir),
                "series": [], "settings": {}, "config": {}, "iters_done": 0,
                **{k: "?" for k in (*COMPARED, "seed")}}


def collect_wandb(project: str) -> list[dict]:
    """The runs of a W&B project (`entity/project`) in `collect`'s form, via the public API:
    comparison keys from the config, results from the summary, the recon series from the
    history (online runs, or offline ones after `wandb sync`)."""
    import wandb  # a slow import, which a report from files never needs

    runs = []
    for run in wandb.Api().runs(project):
        history = run.scan_history(keys=["trainer/iter", "recon/running"])
        features = run.summary.get("quality_features")
        quality = {}
        for column in [f"{m}[{features}]" for m in ("fid", "kid")] if features else []:
            rows = run.scan_history(keys=["trainer/iter", f"quality/{column}"])
            quality[column] = [(int(h["trainer/iter"]), h[f"quality/{column}"]) for h in rows]
        summary = {k: run.summary.get(k) for k in (*(r.key for r in records.RESULT_COLUMNS),
                                                   "iters_done", "quality_features")}
        runs.append(_with_iters_done({
            **{k: run.config.get(k) for k in (*COMPARED, "seed")}, **summary,
            "status": run.summary.get("status") or f"unfinished ({run.state})",
            "series": up_to_divergence([(int(h["trainer/iter"]), h["recon/running"])
                                        for h in history]),
            "quality": {c: rows for c, rows in quality.items() if rows},
            "settings": run.config.get("settings") or {}, "config": run.config, "dir": None,
            "wandb_group": run.group}))
    return runs


def setting(run: dict, key: str) -> str:
    """The run's value of `key`: from its resolved config where that holds a value (so
    `train.lr=5e-4` and a default of 0.0005 agree), else as its command line gave it (a
    config group's choice; a run that failed before writing its config)."""
    if key in COMPARED:
        return str(run[key])
    config = run.get("config") or {}
    value = OmegaConf.select(config, key, default=None) if isinstance(config, DictConfig) \
        else config.get(key)
    if isinstance(value, ListConfig):
        value = OmegaConf.to_container(value)
    if isinstance(value, (DictConfig, dict)) and "name" in value:
        value = value["name"]  # a config group's choice (loss, penalty)
    if value is None or isinstance(value, (DictConfig, dict)):
        return run.get("settings", {}).get(key, "default")
    return str(value)


def setting_or(run: dict, key: str, default: str) -> str:
    """`setting`, where a run that predates the setting (or never wrote its config) had
    `default`."""
    value = setting(run, key)
    return default if value == "default" else value


def variant_keys(runs: list[dict]) -> list[str]:
    """The row's key: the norm, then each of arch, dataset and the command-line settings
    whose value differs between runs. The seed never splits a row: seeds are repetitions."""
    swept = sorted({k for r in runs for k in r.get("settings", {})} - {*COMPARED, "seed"})
    return ["norm"] + [k for k in (*COMPARED[1:], *swept)
                       if len({setting(r, k) for r in runs}) > 1]


def _mean_std(values: list[float], fmt: str) -> str:
    if not values:
        return "-"
    if len(values) == 1:
        return fmt.format(values[0])
    return f"{fmt.format(statistics.mean(values))} ± {fmt.format(statistics.stdev(values))}"


def table_rows(runs: list[dict]) -> tuple[list[str], list[list[str]]]:
    """The table's header and rows (unreadable runs are left out: see `unreadable_note`)."""
    runs = [r for r in runs if r["status"] != UNREADABLE]
    keys = variant_keys(runs)
    # "runs": the runs pooled in a row, i.e. its seeds (settings that differ split rows)
    columns = records.result_columns(runs)
    header = [*keys, *(r.title for r in columns), *STABILITY, "runs", "status"]
    rows = []
    for variant, members in variants(runs, keys):
        # a diverged run's best iteration and losses are results (the paper's collapsing
        # runs had them too); an unfinished run's are partial, so only listed
        done = [r for r in members if r["status"] in records.RESULTS]
        cells = [_mean_std(_results(done, r), r.form) for r in columns]
        finished = sum(r["status"] == "finished" for r in members)
        others = [f"{r['status']} at {r['iters_done']:,} (seed {r['seed']})"
                  for r in members if r["status"] != "finished"]
        restarted = [f"seed {r['seed']} after {len(r['restarts'])} early "
                     f"divergence{'s' * (len(r['restarts']) > 1)} restarted"
                     for r in members if r.get("restarts")]
        status = "; ".join([f"{finished} finished"] * bool(finished) + others + restarted)
        rows.append([*variant, *cells, *variant_stability(members).cells(), str(len(members)),
                     status])
    return header, rows


def variants(runs: list[dict], keys: list[str]) -> list[tuple[tuple, list[dict]]]:
    """`runs` grouped by their values of `keys` (a table row each), in natural order."""
    groups = defaultdict(list)
    for run in runs:
        groups[tuple(setting(run, k) for k in keys)].append(run)
    return sorted(groups.items(), key=lambda item: _natural(item[0]))


def _results(runs: list[dict], result: records.Result) -> list[float]:
    """The runs' values of a result (`records.result_columns`), where they have a finite one
    (JSON may hold NaN, which no mean, spread or comparison can take)."""
    values = [result.of(r) for r in runs]
    return [v for v in values if isinstance(v, (int, float)) and math.isfinite(v)]


def known_settings(runs: list[dict]) -> set[str]:
    """Every setting some run has a value of: the compared keys, its command line's, and
    each dotted key of its config (W&B's runs log theirs flat)."""
    def dotted(node, prefix=""):
        for key, value in node.items():
            yield f"{prefix}{key}"
            if isinstance(value, dict):
                yield from dotted(value, f"{prefix}{key}.")

    known = set(COMPARED)
    for run in runs:
        config = run.get("config") or {}
        if isinstance(config, DictConfig):
            config = OmegaConf.to_container(config)
        known |= set(run.get("settings", {})) | set(dotted(config))
    return known


def check_compared(runs: list[dict], compare: str) -> None:
    """`--compare` must name a setting the runs have: a typo would otherwise leave every
    pair of variants uncompared, silently."""
    known = known_settings(runs)
    if compare not in known:
        near = get_close_matches(compare, sorted(known), n=3, cutoff=0.8)
        raise GansweepError(f"--compare {compare}: no run has that setting"
                            + (f"; did you mean {' or '.join(near)}?" if near else
                               "; give one of the runs' settings, e.g. norm or train.lr"))


def comparisons(runs: list[dict], compare: str = "norm") -> list[dict]:
    """Each pair of variants that differ only in `compare`, for the final and the running
    loss and the final sample quality: the effect size over their runs
    (`gansweep.report.effects`). Finished and diverged runs enter with their losses (a
    diverged run's are results up to its divergence); runs that failed or did not finish are
    counted beside the statistics, never in them."""
    runs = [r for r in runs if r["status"] != UNREADABLE]
    others = [k for k in dict.fromkeys(["arch", "dataset", *variant_keys(runs)])
              if k != compare]  # what the two sides share
    groups = defaultdict(lambda: defaultdict(list))
    for run in runs:
        groups[tuple(setting(run, k) for k in others)][setting(run, compare)].append(run)
    found = []
    for context, sides in sorted(groups.items(), key=lambda item: _natural(item[0])):
        values = sorted(sides, key=lambda v: _natural((v,)))
        for i, b in enumerate(values):
            for a in values[i + 1:]:
                for result in records.compared_results(runs):
                    found.append(_compared(sides[a], sides[b], a, b, ", ".join(context),
                                           result))
    return [c for c in found if c is not None]


def _compared(runs_a, runs_b, a, b, context, result: records.Result) -> dict | None:
    losses = [_results([r for r in side if r["status"] in records.RESULTS], result)
              for side in (runs_a, runs_b)]
    if not all(losses):
        return None
    relative = result.difference == "relative"
    effect = (relative_effect if relative else absolute_effect)(*losses)
    line = finding(a, b, context, result.title, effect)
    diverged = sum(r["status"] == "diverged" for r in (*runs_a, *runs_b))
    left_out = [r for r in (*runs_a, *runs_b) if r["status"] not in records.RESULTS]
    notes = [f"{diverged} diverged, in with their losses up to the divergence"] * bool(diverged)
    notes += [f"{len(left_out)} not finished or failed, left out"] * bool(left_out)
    if notes:
        line += f" ({'; '.join(notes)})"
    return {"a": a, "b": b, "context": context, "metric": result.title, "n_a": effect.n_a,
            "n_b": effect.n_b, "difference": result.difference, "estimate": effect.estimate,
            "ci_low": effect.low, "ci_high": effect.high, "p": effect.p,
            "method": METHOD if relative else ABSOLUTE_METHOD, "diverged": diverged,
            "left_out": len(left_out), "finding": line}


def tracking_of(runs: list[dict]) -> list[dict]:
    """The third question's answer (`gansweep.report.tracking`) over the runs that ended as
    results (a diverged run up to its divergence), by the table's variants."""
    done = [r for r in runs if r["status"] in records.RESULTS]
    keys = variant_keys([r for r in runs if r["status"] != UNREADABLE])
    return tracking(done, lambda run: " / ".join(setting(run, k) for k in keys))


def write_rows(path: Path, rows: list[dict]) -> None:
    """`rows` as a CSV, or no file without any (a report made again in place: an earlier
    one's rows are not this one's)."""
    if not rows:
        path.unlink(missing_ok=True)
        return
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def comparisons_markdown(found: list[dict], compare: str) -> str:
    if not found:
        return ""
    head = (f"\nVariants that differ in {compare}: relative difference of the geometric mean "
            f"loss (FID too), 95% CI and p-value over runs ({METHOD}; KID, which may be 0 or "
            f"below: difference of the means, {ABSOLUTE_METHOD}):\n")
    return "\n".join([head, *(f"- {c['finding']}" for c in found)]) + "\n"


def beside_the_paper(runs: list[dict]) -> str:
    """Below the table: each row that is one of the paper's settings, with the paper's
    numbers and the difference (the row's mean over its finished and diverged runs)."""
    runs = [r for r in runs if r["status"] != UNREADABLE]
    keys = variant_keys(runs)
    lines = []
    for variant, members in variants([r for r in runs if r["status"] in records.RESULTS], keys):
        first = members[0]
        paper = papers_row(first["norm"], setting(first, "arch"), setting(first, "dataset"),
                           setting_or(first, "loss", PAPERS_LOSS),
                           setting_or(first, "penalty", PAPERS_PENALTY))
        if paper is None:
            continue
        cells = []
        for result in records.RESULT_COLUMNS:
            values, theirs = _results(members, result), paper.get(result.key)
            if values and theirs is not None:  # the paper has no value of every column
                ours, form = statistics.mean(values), result.form
                cells.append(f"{result.title} {form.format(ours)} vs {form.format(theirs)} "
                             f"({ours / theirs - 1:+.1%})")
        label = " / ".join(variant)
        lines.append(f"- {label} ({setting(first, 'arch')}, {setting(first, 'dataset')}): "
                     + "; ".join(cells))
    if not lines:
        return ""
    return "\n".join([f"\nBeside the paper (ours vs theirs: {SOURCE}):\n", *lines]) + "\n"


def comparisons_latex(found: list[dict]) -> str:
    """The comparisons as a second tabular (empty without any)."""
    def cell(x, relative):
        return "--" if x is None else shown_difference(x, relative)

    header = ["comparison", "shared", "metric", "difference", "95% CI", "p", "runs"]
    rows = []
    for c in found:
        relative = c["difference"] == "relative"
        interval = f"[{cell(c['ci_low'], relative)}, {cell(c['ci_high'], relative)}]"
        rows.append([f"{c['a']} vs {c['b']}", c["context"], c["metric"],
                     cell(c["estimate"], relative), "--" if c["p"] is None else interval,
                     "--" if c["p"] is None else f"{c['p']:.3f}", f"{c['n_a']} vs {c['n_b']}"])
    return latex(header, rows).replace("%", r"\%") if found else ""


def _natural(variant: tuple) -> tuple:
    """Numbers in numeric order (image size 7 before 32), words in alphabetical order."""
    def key(value):
        try:
            return (0, float(value), "")
        except (TypeError, ValueError):
            return (1, 0.0, str(value))
    return tuple(key(v) for v in variant)


def unreadable_note(runs: list[dict]) -> str:
    """Below the table: the runs left out of it because their files cannot be read."""
    bad = [r for r in runs if r["status"] == UNREADABLE]
    return "".join(f"\nunreadable, not in the table: {r['dir']}: {r['error']}" for r in bad) \
        + "\n" * bool(bad)


def shown(cell: str) -> str:
    """A cell as a table shows it: a setting's value with more digits than a reader needs
    (an Optuna trial's learning rate: 0.00019578897201212982) to 4 significant ones. Rows
    are still one per exact value (`variants`), and table.csv keeps it whole. Result cells
    never have over 10 digits (their formats: `records.RESULT_COLUMNS`)."""
    try:
        value = float(cell)
    except ValueError:
        return cell
    digits = len(cell.lower().split("e")[0].replace(".", "").replace("-", "").lstrip("0"))
    return f"{value:.4g}" if digits > 10 and not cell.lstrip("-").isdigit() else cell


def markdown(header, rows) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(map(shown, r)) + " |" for r in rows]) + "\n"


def latex(header, rows) -> str:
    escape = lambda s: s.replace("_", r"\_").replace("±", r"$\pm$")  # noqa: E731
    body = [" & ".join(escape(shown(c)) for c in r) + r" \\" for r in rows]
    return "\n".join([r"\begin{tabular}{" + "l" * len(header) + "}", r"\hline",
                      " & ".join(escape(h) for h in header) + r" \\", r"\hline", *body,
                      r"\hline", r"\end{tabular}"]) + "\n"


def plot(runs: list[dict], path: Path) -> None:
    import matplotlib  # a slow import, needed only here

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = variant_keys(runs)
    norms = sorted({r["norm"] for r in runs})
    colours = {n: plt.get_cmap("tab10")(i) for i, n in enumerate(norms)}
    fig, ax = plt.subplots(figsize=(7, 4))
    for variant, members in variants([r for r in runs if r["series"]], keys):
        label, colour = " / ".join(map(str, variant)), colours[members[0]["norm"]]
        if len(members) == 1:
            iters, losses = zip(*members[0]["series"])
            ax.plot(iters, losses, color=colour, label=label)
            continue
        common = sorted(set.intersection(*(set(i for i, _ in r["series"]) for r in members)))
        by_iter = [[dict(r["series"])[i] for r in members] for i in common]
        ax.plot(common, [statistics.mean(v) for v in by_iter], color=colour,
                label=f"{label} (mean of {len(members)} runs)")
        ax.fill_between(common, [min(v) for v in by_iter], [max(v) for v in by_iter],
                        color=colour, alpha=0.2, linewidth=0)
    best = [(run_stability(r["series"]), colours[r["norm"]]) for r in runs if r["series"]]
    ax.scatter([b.best_iter for b, _ in best], [b.best for b, _ in best], marker="v", s=18,
               color=[c for _, c in best], edgecolors="black", linewidths=0.4, zorder=3,
               label="each run's best")
    ax.set_xlabel("GAN iteration")
    ax.set_ylabel("running reconstruction error")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def collect_runs(sweep_dir: Path | None, wandb_project: str | None) -> list[dict]:
    """The runs of a sweep directory, or of a W&B project."""
    runs = collect_wandb(wandb_project) if wandb_project else collect(Path(sweep_dir))
    if not runs:
        raise GansweepError(f"no runs under {wandb_project or sweep_dir} "
                            f"(a run directory holds config.yaml)")
    return runs


def to_wandb_report(runs: list[dict], sweep_dir: Path | None, wandb_project: str | None,
                    target: str, compare: str, text: str, out_dir: Path | None,
                    dry_run: bool) -> str:
    """The report as a W&B Report in `target` (ENTITY/PROJECT): saved, or with `dry_run`
    its spec written to `wandb_report.json`; says where it went."""
    from gansweep.report import dashboard

    entity, _, project = target.partition("/")
    runs = [r for r in runs if r["status"] != UNREADABLE]
    name = Path(sweep_dir).resolve().name if sweep_dir else wandb_project
    built = dashboard.build(runs, entity, project, compare, text, f"gansweep: {name}")
    if not dry_run:
        return f"W&B Report saved: {dashboard.save(built)}"
    path = Path(out_dir or sweep_dir) / "wandb_report.json"
    path.write_text(json.dumps(dashboard.viewspec(built), indent=1) + "\n")
    return f"W&B Report not saved (--dry-run); its spec, as W&B would save it: {path}"


def report(sweep_dir: Path | None, out_dir: Path | None = None,
           wandb_project: str | None = None, compare: str = "norm",
           runs: list[dict] | None = None) -> str:
    """Writes the table (md, csv, tex), the comparisons of variants that differ in `compare`
    (in table.md and table.tex, and comparisons.csv), the tracking of sample quality by the
    reconstruction error (table.md, tracking.csv) and recon.png into `out_dir` (default:
    the sweep directory); returns the markdown. Runs come from `sweep_dir` or a W&B
    project, or are given (`runs`, as `collect_runs` reads them)."""
    runs = runs or collect_runs(sweep_dir, wandb_project)
    out_dir = Path(out_dir or sweep_dir)
    header, rows = table_rows(runs)
    out_dir.mkdir(parents=True, exist_ok=True)
    found = comparisons(runs, compare)
    tracked = tracking_of(runs)
    md = (markdown(header, rows) + unreadable_note(runs) + beside_the_paper(runs)
          + comparisons_markdown(found, compare) + tracking_markdown(tracked))
    (out_dir / "table.md").write_text(md)
    (out_dir / "table.tex").write_text(latex(header, rows) + comparisons_latex(found))
    with open(out_dir / "table.csv", "w", newline="") as f:
        csv.writer(f).writerows([header, *rows])
    write_rows(out_dir / "comparisons.csv", found)
    write_rows(out_dir / "tracking.csv", tracked)
    plot([r for r in runs if r["status"] != UNREADABLE], out_dir / "recon.png")
    return md


class SweepReport(Callback):
    """Hydra callback: the sweep's table, written and printed when a multirun ends."""

    def on_multirun_end(self, config, **kwargs) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        try:
            print(f"\n{report(sweep_dir)}\ntable.md, table.csv, table.tex, comparisons.csv, "
                  f"tracking.csv, recon.png in {sweep_dir}")
        except Exception as error:  # a report problem must not hide the sweep's results
            print(f"gansweep: could not write the sweep report for {sweep_dir}: {error}")
        failed = sorted(sweep_dir.rglob(records.FAILED))
        if failed:
            print(f"gansweep: {len(failed)} run(s) of this sweep failed; the reason is in each "
                  f"one's failed.json and log: " + ", ".join(str(p.parent) for p in failed)
                  + ". Fix it and run the same command again: finished runs are skipped.",
                  file=sys.stderr)
            sys.exit(1)  # scripts and CI see the sweep as failed, after its table


def main(argv=None) -> str:
    parser = argparse.ArgumentParser(prog="python -m gansweep.report", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("sweep_dir", type=Path, nargs="?", help="a sweep (or any folder of runs)")
    parser.add_argument("--wandb", metavar="ENTITY/PROJECT", help="read the runs from W&B")
    parser.add_argument("--out", type=Path, default=None, help="default: the sweep directory")
    parser.add_argument("--compare", default="norm", metavar="SETTING",
                        help="compare variants that differ in this setting (default: norm; "
                             "e.g. train.lr)")
    parser.add_argument("--wandb-report", metavar="ENTITY/PROJECT",
                        help="also build the report as a W&B Report there (needs W&B online "
                             "to save; pip install -e '.[wandb-report]')")
    parser.add_argument("--dry-run", action="store_true",
                        help="with --wandb-report: write its spec to wandb_report.json "
                             "instead of saving it")
    args = parser.parse_args(argv)
    if not args.sweep_dir and not (args.wandb and args.out):
        parser.error("give a sweep directory, or --wandb ENTITY/PROJECT with --out DIR")
    if args.wandb_report and args.wandb_report.count("/") != 1:
        parser.error(f"--wandb-report {args.wandb_report}: give ENTITY/PROJECT, e.g. "
                     f"my-team/gansweep")
    if args.dry_run and not args.wandb_report:
        parser.error("--dry-run goes with --wandb-report ENTITY/PROJECT")
    runs = collect_runs(args.sweep_dir, args.wandb)  # once, for the report and W&B's
    check_compared(runs, args.compare)
    md = report(args.sweep_dir, args.out, args.wandb, args.compare, runs)
    print(md)
    if args.wandb_report:
        print(to_wandb_report(runs, args.sweep_dir, args.wandb, args.wandb_report,
                              args.compare, md, args.out, args.dry_run))
    return md
