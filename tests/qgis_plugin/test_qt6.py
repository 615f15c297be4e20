"""The plugin is Qt 5 / Qt 6 neutral, as its metadata declares (QGIS 3.22 to 4)."""

import ast
import configparser
import re
from pathlib import Path

import pytest

PLUGIN = Path(__file__).parents[2] / 'geossl' / 'qgis_plugin'
SOURCES = sorted(PLUGIN.glob('*.py'))

#: What PyQt6 or QGIS 4 lack, and what to write instead.
QT5_ONLY = {
    r'\bPyQt5\b': 'import Qt through qgis.PyQt',
    r'\.exec_\(': 'exec() (exec_ is gone in PyQt6)',
    r'\bQVariant\.[A-Z]\w*': 'QMetaType.Type (QVariant.Type is gone in PyQt6)',
    r'\bQt\.[A-Z]\w*\b(?!\.)': "Qt's scoped enums (Qt.AlignmentFlag.AlignLeft)",
    r'\bQgsProcessing\.Type\w+': 'enums.VECTOR_POINT and friends',
    r'\bQgsProcessingParameterNumber\.(Integer|Double)\b': 'enums.INTEGER',
    r'\bQgsProcessingParameterFile\.(File|Folder)\b': 'enums.FOLDER',
}


def test_metadata_declares_qgis_3_22_to_4_and_qt6():
    metadata = configparser.ConfigParser()
    metadata.read(PLUGIN / 'metadata.txt')
    general = metadata['general']
    assert general['qgisMinimumVersion'] == '3.22'
    assert general['qgisMaximumVersion'] == '4.99'
    assert general.getboolean('supportsQt6')


@pytest.mark.parametrize('source', SOURCES, ids=lambda path: path.name)
def test_source_has_no_qt5_only_usage(source):
    text = source.read_text()
    found = [
        f'{source.name}:{text.count(chr(10), 0, match.start()) + 1}: '
        f'{match.group(0)} -> {advice}'
        for pattern, advice in QT5_ONLY.items()
        for match in re.finditer(pattern, text)
    ]
    assert not found, '\n'.join(found)


@pytest.mark.parametrize('source', SOURCES, ids=lambda path: path.name)
def test_source_parses_as_the_python_of_qgis_3_22(source):
    # QGIS 3.22's Python is 3.9.
    ast.parse(source.read_text(), filename=str(source), feature_version=(3, 9))


def test_the_scan_finds_qt5_only_usage():
    offending = 'from PyQt5.QtCore import Qt\nbox.exec_()\nQt.AlignLeft\n'
    hits = [p for p in QT5_ONLY if re.search(p, offending)]
    assert len(hits) == 3
    assert not re.search(r'\bQt\.[A-Z]\w*\b(?!\.)', 'Qt.AlignmentFlag.AlignLeft')
