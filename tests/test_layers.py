"""The package's layers import downwards only, with no circles (docs/development.md).

Data flows one way, so imports do: a layer never imports one above it, no module
imports itself back through others, and the learning core trains on tensors with no
geospatial library installed.
"""

import ast
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

PACKAGE = Path(__file__).parents[1] / 'geossl'

#: Each layer and the layers above it, which it must not import.
ABOVE = {
    'data': ('models', 'ssl', 'tasks', 'inference', 'cli'),
    'augment': ('tasks', 'inference', 'cli'),
    'models': ('ssl', 'tasks', 'inference', 'cli'),
    'ssl': ('tasks', 'inference', 'cli'),
    'tasks': ('inference', 'cli'),
    'inference': ('cli',),
}

#: The geospatial stack, which the learning core must not need.
GEOSPATIAL = (
    'rasterio',
    'geopandas',
    'torchgeo',
    'pyproj',
    'shapely',
    'pyogrio',
    'pystac',
    'pystac_client',
)

#: The learning core: the task, the teacher-student, the policies, the views, the
#: models and the datasets and DataModules that take tensors.
CORE = (
    'geossl.tasks.semi_supervised',
    'geossl.tasks.teacher_student',
    'geossl.ssl.policies',
    'geossl.augment.views',
    'geossl.models.classifier',
    'geossl.models.weights',
    'geossl.models.weight_sources',
    'geossl.data.datasets',
    'geossl.data.datamodule',
    'geossl.data.splits',
)


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix('').parts
    return '.'.join(parts[:-1] if parts[-1] == '__init__' else parts)


def _imports(path: Path) -> set[str]:
    """Every module a file imports, at its top or inside functions.

    A module's ``__getattr__`` that hands out names moved elsewhere for a release
    (PEP 562) is left out: it is the old name's forwarding address, not a need.
    """
    tree = ast.parse(path.read_text())
    forwarding = [
        node
        for node in tree.body
        if isinstance(node, ast.FunctionDef) and node.name == '__getattr__'
    ]
    skipped = {id(n) for shim in forwarding for n in ast.walk(shim)}
    package = _module_name(path)
    if path.name != '__init__.py':
        package = package.rpartition('.')[0]
    modules = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ''
            if node.level:
                parent = package.split('.')[: len(package.split('.')) - node.level + 1]
                base = '.'.join([*parent, base] if base else parent)
            modules.add(base)
            # `from package import module` imports the module.
            modules.update(f'{base}.{alias.name}' for alias in node.names)
    return modules


def _import_graph() -> dict[str, set[str]]:
    """geossl's modules and the geossl modules each imports."""
    files = {_module_name(path): path for path in PACKAGE.rglob('*.py')}
    graph = {}
    for name, path in files.items():
        graph[name] = {
            module for module in _imports(path) if module in files and module != name
        }
    return graph


def _circle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle, as the modules around it, or None."""
    done: set[str] = set()
    path: list[str] = []

    def visit(module: str) -> list[str] | None:
        if module in path:
            return [*path[path.index(module) :], module]
        if module in done:
            return None
        path.append(module)
        for imported in sorted(graph[module]):
            if circle := visit(imported):
                return circle
        path.pop()
        done.add(module)
        return None

    for module in sorted(graph):
        if circle := visit(module):
            return circle
    return None


@pytest.mark.parametrize('layer', sorted(ABOVE))
def test_no_layer_imports_one_above_it(layer):
    above = tuple(f'geossl.{name}' for name in ABOVE[layer])
    for path in sorted((PACKAGE / layer).rglob('*.py')):
        upward = sorted(m for m in _imports(path) if m.startswith(above))
        assert not upward, f'{path.relative_to(PACKAGE)} imports {upward}'


def test_no_module_imports_itself_back():
    circle = _circle(_import_graph())
    assert circle is None, 'import circle: ' + ' -> '.join(circle)


def test_the_circle_finder_finds_a_circle():
    graph = {'a': {'b'}, 'b': {'c'}, 'c': {'a'}, 'd': {'a'}}
    assert _circle(graph) == ['a', 'b', 'c', 'a']
    assert _circle({'a': {'b'}, 'b': set()}) is None


def test_the_learning_core_trains_without_the_geospatial_stack(tmp_path):
    # In a fresh interpreter where every geospatial library fails to import, as on
    # a machine without GDAL: the core imports and trains a few steps on tensors.
    script = textwrap.dedent(
        f"""
        import importlib.abc
        import sys

        BLOCKED = {GEOSPATIAL!r}

        class Unavailable(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path, target=None):
                if name.split('.')[0] in BLOCKED:
                    raise ImportError(f'{{name}} is not installed')

        sys.meta_path.insert(0, Unavailable())
        for module in {CORE!r}:
            __import__(module)

        import pandas as pd
        import torch
        from lightning import Trainer

        from geossl.data.datamodule import SemiSupervisedDataModule
        from geossl.data.datasets import GeoClassificationDataset
        from geossl.data.splits import SplitConfig
        from geossl.tasks.semi_supervised import SemiSupervisedTask

        class Tensors(GeoClassificationDataset):
            def __init__(self, images, labels, lon, lat):
                index = pd.DataFrame({{
                    'sample_id': [str(i) for i in range(len(images))],
                    'path': [''] * len(images),
                    'label': labels,
                    'lon': lon,
                    'lat': lat,
                    'datetime': pd.NaT,
                    'crs': None,
                    'minx': 0.0, 'miny': 0.0, 'maxx': 0.0, 'maxy': 0.0,
                }})
                index['datetime'] = pd.to_datetime(index['datetime'], utc=True)
                super().__init__(index, ['a', 'b'], False, ['B4', 'B3', 'B2'])
                self.images = images

            def read_image(self, position):
                return self.images[position]

        torch.manual_seed(0)
        count = 48
        data = Tensors(
            torch.rand(count, 3, 16, 16) * 1000,
            ['a', 'b'] * (count // 2),
            torch.linspace(5, 15, count).tolist(),
            torch.linspace(45, 55, count).tolist(),
        )
        split = SplitConfig(labels_per_class=4, val_fraction=0.1, test_fraction=0.1)
        module = SemiSupervisedDataModule(data, split, {str(tmp_path)!r}, batch_size=4, mu=2)
        task = SemiSupervisedTask.for_dataset(
            data, 'fixmatch', model='resnet18', chip_size=16, teacher=True
        )
        trainer = Trainer(
            max_steps=3, logger=False, enable_checkpointing=False,
            enable_progress_bar=False, enable_model_summary=False,
            limit_val_batches=1, accelerator='cpu', default_root_dir={str(tmp_path)!r},
        )
        trainer.fit(task, module)
        assert trainer.global_step == 3
        assert task.teacher is not None
        assert not any(name.split('.')[0] in BLOCKED for name in sys.modules)
        """
    )
    result = subprocess.run(
        [sys.executable, '-c', script],
        capture_output=True,
        text=True,
        cwd=PACKAGE.parent,
    )
    assert result.returncode == 0, result.stderr[-3000:]
