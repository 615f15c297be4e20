import json

import pandas as pd
import pytest

from geossl.cli import main
from tests.conftest import sample_fit_args

# Folds of samples, stratified: every class keeps training labels in each fold
# whatever scikit-learn's version deals (spatial folds: tests/data/test_splits.py).
FOLD_OPTIONS = ('--data.split_strategy', 'random')


def _fold(shared_data, run_dir, fold):
    options = (*FOLD_OPTIONS, '--data.folds', '2', '--data.fold', str(fold))
    step = ('--data.chip_size', '32', '--trainer.max_steps', '1')
    small = ('--data.batch_size', '2', '--data.mu', '1')
    assert main(sample_fit_args(shared_data, run_dir, *options, *step, *small)) == 0
    test = sample_fit_args(shared_data, run_dir, *options, '--data.chip_size', '32')
    test[0] = 'test'
    assert main([*test, '--ckpt_path', 'last']) == 0


def test_two_folds_make_one_table(shared_data, tmp_path, capsys):
    runs = [tmp_path / f'fold{fold}' for fold in (0, 1)]
    for fold, run in enumerate(runs):
        _fold(shared_data, run, fold)
    tested = [
        pd.read_csv(run / 'splits.csv', comment='#').query("split == 'test'")
        for run in runs
    ]
    # Each tile is tested in one fold: the two test sets are apart and cover all.
    assert not set(tested[0]['sample_id']) & set(tested[1]['sample_id'])
    assert len(tested[0]) + len(tested[1]) == 100
    report = json.loads((runs[1] / 'test_metrics.json').read_text())
    assert (report['folds'], report['fold']) == (2, 1)
    capsys.readouterr()
    assert (
        main(['cross-validation', *map(str, runs), '-o', str(tmp_path / 'cv.csv')]) == 0
    )
    printed = capsys.readouterr().out
    assert '| run | fold | test_accuracy | test_f1_macro | test_kappa |' in printed
    table = pd.read_csv(tmp_path / 'cv.csv', index_col=0)
    accuracy = [r['metrics']['test_accuracy'] for r in map(_report, runs)]
    assert table.loc['mean', 'test_accuracy'] == pytest.approx(sum(accuracy) / 2)
    assert list(table['fold'][:2]) == [0, 1]


def _report(run):
    return json.loads((run / 'test_metrics.json').read_text())


def test_a_run_without_a_test_is_refused_in_one_line(tmp_path, capsys):
    (tmp_path / 'fold0').mkdir()
    assert main(['cross-validation', str(tmp_path / 'fold0')]) == 2
    assert (
        capsys.readouterr()
        .err.strip()
        .endswith('fold0: has no test_metrics.json; run geossl test in it first')
    )
