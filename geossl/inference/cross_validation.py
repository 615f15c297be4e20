"""One table of a cross-validation's folds, from each fold's test run.

Each fold is one ``geossl fit`` with ``--data.folds k --data.fold i`` in a run
folder of its own, then ``geossl test`` there, which writes ``test_metrics.json``
(:class:`~geossl.tasks.metrics_report.MetricsReport`). This reads those files.
"""

import json
from pathlib import Path

import pandas as pd

from geossl.errors import GeosslInputError, reading
from geossl.tasks.metrics_report import TEST_METRICS_NAME

#: The metrics of the table, multi-class first, then multi-label.
TABLE_METRICS = (
    'test_accuracy',
    'test_f1_macro',
    'test_kappa',
    'test_map_macro',
    'test_f1_micro',
)


def cross_validation(runs: list[Path], output: Path | None = None) -> pd.DataFrame:
    """Per fold and mean +- standard deviation of the test metrics of k runs.

    Args:
        runs: the folds' run folders (``--trainer.default_root_dir``), each
            tested.
        output: a CSV file for the table; None to print it only.

    Returns:
        One row per fold, then ``mean`` and ``std``.

    Raises:
        GeosslInputError: for a run folder that has no test metrics, or two runs of
            the same fold.
    """
    rows = []
    for run in runs:
        path = Path(run) / TEST_METRICS_NAME
        if not path.is_file():
            raise GeosslInputError(
                run, f'has no {TEST_METRICS_NAME}; run geossl test in it first'
            )
        with reading(path, 'a geossl test report'):
            report = json.loads(path.read_text())
        metrics = report['metrics']
        rows.append(
            {'run': str(run), 'fold': report.get('fold')}
            | {name: metrics[name] for name in TABLE_METRICS if name in metrics}
        )
    table = pd.DataFrame(rows)
    folds = table['fold'].dropna()
    if folds.duplicated().any():
        raise GeosslInputError(
            'runs', f'test fold {int(folds[folds.duplicated()].iloc[0])} twice'
        )
    table = table.sort_values('fold', na_position='last').set_index('run')
    values = table.drop(columns='fold')
    summary = pd.DataFrame({'mean': values.mean(), 'std': values.std(ddof=1)}).T
    table = pd.concat([table, summary])
    if output is not None:
        output.parent.mkdir(parents=True, exist_ok=True)
        table.to_csv(output)
    print(_markdown(table))
    return table


def _markdown(table: pd.DataFrame) -> str:
    """The table in Markdown, four decimals."""
    columns = ['run', *table.columns]
    lines = ['| ' + ' | '.join(columns) + ' |', '|' + '---|' * len(columns)]
    for name, row in table.iterrows():
        cells = [
            ''
            if pd.isna(value)
            else f'{value:.4f}'
            if isinstance(value, float)
            else str(value)
            for value in row
        ]
        lines.append('| ' + ' | '.join([str(name), *cells]) + ' |')
    return '\n'.join(lines)
