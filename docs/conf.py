"""Sphinx configuration of geossl's documentation (``make docs``)."""

project = 'geossl'
author = 'geossl developers'
copyright = '2026, geossl developers'

extensions = [
    'myst_parser',
    'sphinx.ext.autodoc',
    'sphinx.ext.autosummary',
    'sphinx.ext.napoleon',
    'sphinx.ext.viewcode',
]

source_suffix = {'.rst': 'restructuredtext', '.md': 'markdown'}
exclude_patterns = ['_build']
templates_path = ['_templates']

# The API reference is generated from the docstrings (Google style), module by
# module, so a renamed or undocumented function breaks the build, not the reader.
autosummary_generate = True
autodoc_default_options = {'members': True, 'show-inheritance': True}
autodoc_member_order = 'bysource'
# The class docstring, then __init__'s Args.
autoclass_content = 'both'
autodoc_typehints = 'description'
# The QGIS plugin runs inside QGIS: its imports are QGIS's own.
autodoc_mock_imports = ['qgis', 'processing']
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_rtype = False
# Attributes as fields of their class, not as objects autodoc lists again.
napoleon_use_ivar = True

# Every reference to geossl's own objects must resolve, so that renaming a function
# breaks the build; other libraries' objects are linked where their docs are at hand
# and not checked (no internet at build time).
nitpicky = True
nitpick_ignore_regex = [
    # Other packages' objects; QGIS's (the plugin's imports are mocked); TypeVars;
    # private classes named in annotations.
    (r'py:.*', r'(?!geossl\.)\w+\..*'),
    (r'py:.*', r'QgsProcessing\w*|T|geossl\.\w+(\.\w+)*\._\w+'),
]

# LightningCLI's __init__ docstring, which geossl's CLI classes show, names labels
# of Lightning's own docs; geossl's pages link with Markdown (checked by MyST).
suppress_warnings = ['ref.ref']

myst_heading_anchors = 3
html_theme = 'furo'
html_title = 'geossl'
