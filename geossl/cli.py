"""The ``geossl`` command.

Options use the underscore style of LightningCLI (``--filename_regex``), which the
training subcommands will share. Bad input ends with one line naming the file or
option at fault and exit status 2.
"""

import sys
from collections.abc import Sequence
from pathlib import Path

from jsonargparse import ArgumentParser, Namespace

from geossl.data.index import index_source, write_index
from geossl.data.metadata import SENTINEL2_FILENAME_REGEX, MetadataReader
from geossl.data.scene import SceneDataset
from geossl.errors import GeosslInputError

#: Exit status for bad input, as argparse uses for bad arguments.
EXIT_BAD_INPUT = 2


def _add_metadata_options(parser: ArgumentParser) -> None:
    parser.add_argument(
        '--filename_regex',
        type=str,
        default=SENTINEL2_FILENAME_REGEX.strip(),
        help='Regular expression with a (?P<date>...) group, matched against each '
        'file or sample-folder name to read its acquisition date (the TorchGeo '
        'convention). Default: the Sentinel-2 naming convention. Give an empty '
        'string to skip file names.',
    )
    parser.add_argument(
        '--date_format',
        type=str | None,
        default=None,
        help='strptime format of the date group, e.g. %Y%m%d. Default: ISO 8601 '
        '(20160112, 20160112T160652, 2016-01-12T16:06:52Z).',
    )
    parser.add_argument(
        '--sidecar',
        type=str | None,
        default=None,
        help='CSV with columns path,lon,lat,datetime that fills in locations and '
        'dates the data itself lacks (paths relative to the CSV).',
    )
    parser.add_argument(
        '--location_optional',
        type=bool,
        default=False,
        help='Mark the location of rasters with no CRS as missing instead of '
        'failing (needed for JPEG/PNG folders such as EuroSAT RGB).',
    )


def _metadata_reader(options: Namespace) -> MetadataReader:
    return MetadataReader(
        filename_regex=options.filename_regex or None,
        date_format=options.date_format,
        sidecar=options.sidecar,
        require_location=not options.location_optional,
    )


def _index_parser() -> ArgumentParser:
    parser = ArgumentParser(
        description='Index a data source into a GeoPackage of footprints (EPSG:4326) '
        'with path, class, lon, lat and acquisition datetime per sample. Re-running '
        'on the same output reuses the rows of unchanged files.'
    )
    parser.add_argument(
        'source',
        type=str,
        help='A folder of class sub-folders, a folder of BigEarthNet patches, a '
        'folder of rasters (e.g. one scene, one file per band) or a raster file.',
    )
    parser.add_argument(
        '-o', '--output', type=str, required=True, help='The .gpkg file to write.'
    )
    parser.add_argument(
        '--labels',
        type=str | None,
        default=None,
        help='Vector file (GeoPackage, GeoJSON, Shapefile) of labelled points or '
        'polygons over the scene(s) in SOURCE. The index then lists chips: '
        'labelled chips around the labels and unlabelled chips on a grid across '
        'the rest of each scene.',
    )
    parser.add_argument(
        '--class_column',
        type=str,
        default='class',
        help='Column of the labels file holding the class.',
    )
    parser.add_argument(
        '--chip_size',
        type=int,
        default=64,
        help='Chip width and height in pixels of the finest band (with --labels).',
    )
    parser.add_argument(
        '--stride',
        type=int | None,
        default=None,
        help='Step of the unlabelled chip grid in pixels (with --labels); default: '
        'the chip size.',
    )
    _add_metadata_options(parser)
    return parser


def _run_index(options: Namespace) -> None:
    reader = _metadata_reader(options)
    if options.labels is None:
        index = index_source(options.source, options.output, reader)
    else:
        index = SceneDataset(
            options.source,
            options.labels,
            class_column=options.class_column,
            chip_size=options.chip_size,
            stride=options.stride,
            reader=reader,
        ).index
        write_index(index, options.output)
    located = int(index['lon'].notna().sum())
    dated = int(index['datetime'].notna().sum())
    labelled = int(index['label'].notna().sum())
    print(
        f'Indexed {len(index)} samples ({index.attrs["layout"]} layout; '
        f'{labelled} labelled, {located} with location, {dated} with date) '
        f'-> {Path(options.output)}'
    )


def build_parser() -> ArgumentParser:
    """The top-level ``geossl`` argument parser.

    Returns:
        The parser with one subcommand per tool.
    """
    parser = ArgumentParser(
        prog='geossl',
        description='Semi-supervised learning on Sentinel-2 imagery with where and '
        'when each tile was taken.',
    )
    subcommands = parser.add_subcommands(dest='command')
    subcommands.add_subcommand(
        'index', _index_parser(), help='Index a data source into a GeoPackage.'
    )
    return parser


_RUNNERS = {'index': _run_index}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``geossl`` command.

    Args:
        argv: arguments without the program name; defaults to ``sys.argv[1:]``.

    Returns:
        The exit status: 0 on success, 2 on bad input.
    """
    options = build_parser().parse_args(argv)
    try:
        _RUNNERS[options.command](options[options.command])
    except GeosslInputError as error:
        print(f'geossl: error: {error}', file=sys.stderr)
        return EXIT_BAD_INPUT
    return 0


if __name__ == '__main__':
    sys.exit(main())
