import ast
from pathlib import Path

from geossl.ssl.policies import POLICIES, SUPERVISED

PLUGIN_DIR = Path(__file__).parents[2] / 'geossl' / 'qgis_plugin'


def _module_constant(path, name):
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Assign) and ast.unparse(node.targets[0]) == name:
            return ast.literal_eval(node.value)
    raise AssertionError(f'{name} is not assigned in {path}')


def test_train_offers_every_multi_class_algorithm_of_fit():
    # The plugin runs in QGIS's Python, without geossl, so it keeps its own list.
    offered = _module_constant(PLUGIN_DIR / 'algorithms.py', 'ALGORITHMS')
    multi_class = [name for name, cls in POLICIES.items() if not cls.multilabel]
    assert offered == [SUPERVISED, *multi_class]
