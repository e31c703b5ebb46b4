"""Hydra's Optuna sweeper as the learning-rate study uses it (conf/experiment/lr_study.yaml),
ending in one line where no trial completed.

hydra-optuna-sweeper 1.3.0 asks Optuna for the best trial once every trial has run; with
none completed (each failed, diverged or did not finish: the objective gave None) Optuna
raises ValueError, and the command ends in its traceback, before the sweep's table is made.
`Study` lets the table be made, then says what happened and exits 1: the study found nothing.

Hydra takes sweepers only from its `hydra_plugins` namespace, so this package installs there
(pyproject.toml); `python -m gansweep` registers it by hand as well, since Hydra's scan of the
namespace misses a package installed in editable mode.
"""

from __future__ import annotations

import sys

from hydra_plugins.hydra_optuna_sweeper.optuna_sweeper import OptunaSweeper


class Study(OptunaSweeper):
    def sweep(self, arguments: list[str]) -> None:
        try:
            return super().sweep(arguments)
        except ValueError as error:
            if "No trials are completed" not in str(error):
                raise
        from gansweep.report.table import SweepReport  # the study's runs are done: no import cost

        config = self.sweeper.config
        try:
            SweepReport().on_multirun_end(config)  # the table, and the failed runs listed
        except SystemExit:  # it exits 1 where runs failed: so does the study, just below
            pass
        sys.exit(f"gansweep: no trial of the study {config.hydra.sweeper.study_name!r} "
                 f"completed (each failed, diverged or did not finish; their table is above "
                 f"and in {config.hydra.sweep.dir}): no best learning rate; widen or move "
                 f"the searched range, or fix what made the runs fail")
