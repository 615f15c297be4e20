"""Processing enum values from QGIS 3.22 (Qt 5) to QGIS 4 (Qt 6).

QGIS 3.36 moved them into scoped enums of ``Qgis``, the only names Qt 6 builds are
sure to have; QGIS 3.22 to 3.34 have only the older, unscoped names. Each value is
looked up by name, so neither spelling is needed where it does not exist.
"""

from __future__ import annotations

from typing import Any

from qgis.core import (
    Qgis,
    QgsProcessing,
    QgsProcessingParameterFile,
    QgsProcessingParameterNumber,
)


def _value(scoped: str, member: str, owner: Any, unscoped: str) -> Any:
    """``Qgis.<scoped>.<member>`` where QGIS has it, else ``<owner>.<unscoped>``."""
    enum = getattr(Qgis, scoped, None)
    return getattr(owner, unscoped) if enum is None else getattr(enum, member)


VECTOR_POINT = _value(
    'ProcessingSourceType', 'VectorPoint', QgsProcessing, 'TypeVectorPoint'
)
VECTOR_POLYGON = _value(
    'ProcessingSourceType', 'VectorPolygon', QgsProcessing, 'TypeVectorPolygon'
)
INTEGER = _value(
    'ProcessingNumberParameterType', 'Integer', QgsProcessingParameterNumber, 'Integer'
)
DOUBLE = _value(
    'ProcessingNumberParameterType', 'Double', QgsProcessingParameterNumber, 'Double'
)
FOLDER = _value(
    'ProcessingFileParameterBehavior', 'Folder', QgsProcessingParameterFile, 'Folder'
)
