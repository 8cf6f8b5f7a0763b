"""The Q-MLP ablation: naive quantization, then the five techniques added one at a time (Sec. 5).

* :mod:`.plan` -- the rows, the plan (:class:`AblationConfig`) and its runs, reused or resumed;
* :mod:`.report` -- Markdown and CSV tables and a bar plot of the results;
* :mod:`.estimate` -- the plan's run time, from a few steps of the training loop.

The command line is :mod:`qmlp_brevitas.cli.ablation` (``qmlp-ablation``).
"""

from .estimate import estimate_seconds, time_training
from .plan import (
    QUICK,
    TECHNIQUES,
    AblationConfig,
    AblationRow,
    ColumnHook,
    RowResult,
    ablation_rows,
    default_columns,
    effective_settings,
    run_ablation,
    run_one,
    size_column,
)
from .report import delta_note, headline, markdown_table, plot_ablation, write_csv, write_reports

__all__ = [
    "QUICK",
    "TECHNIQUES",
    "AblationConfig",
    "AblationRow",
    "ColumnHook",
    "RowResult",
    "ablation_rows",
    "default_columns",
    "delta_note",
    "effective_settings",
    "estimate_seconds",
    "headline",
    "markdown_table",
    "plot_ablation",
    "run_ablation",
    "run_one",
    "size_column",
    "time_training",
    "write_csv",
    "write_reports",
]
