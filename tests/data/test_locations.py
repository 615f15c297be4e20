import shutil
import warnings

import pandas as pd
import pytest
import torch

from geossl.cli import main
from geossl.data.folder import ImageFolderDataset
from geossl.data.index import index_source, read_index
from geossl.data.locations import LocationTable
from geossl.data.metadata import MetadataReader
from geossl.errors import GeosslInputError, LabelsFileError
from tests.conftest import random_chip, write_raster


def _jpegs(shared_data, root, names):
    """A few real EuroSAT RGB JPEGs in class folders, as EuroSAT ships them."""
    for name in names:
        source = shared_data / 'eurosat-rgb' / name.split('_')[0] / name
        target = root / name.split('_')[0] / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(source, target)
    return root


def test_eurosat_parquet_locates_the_rgb_jpegs_as_published(shared_data, tmp_path):
    # The table names EuroSAT-MS files (AnnualCrop_1.tif); the JPEGs match by name
    # without the extension.
    table = shared_data / 'eurosat-locations' / 'eurosat_metadata.parquet'
    names = ['AnnualCrop_1.jpg', 'AnnualCrop_10.jpg', 'Forest_7.jpg', 'River_3.jpg']
    root = _jpegs(shared_data, tmp_path / 'rgb', names)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        data = ImageFolderDataset(
            root,
            reader=MetadataReader(locations=table),
            index_path=tmp_path / 'i.gpkg',
            progress=False,
        )
    # Every sample is named: no warning of samples the table misses.
    assert not [w for w in caught if 'are not in it' in str(w.message)]
    published = pd.read_parquet(table).set_index('image_id')
    for row in data.index.itertuples():
        expected = published.loc[row.path.rsplit('/', 1)[-1].replace('.jpg', '.tif')]
        assert (row.lon, row.lat) == (expected['lon'], expected['lat'])
    assert data.metadata_parts == 'location'
    assert all(data[i]['meta_mask'].tolist() == [True, True, False] for i in range(4))


def test_rows_match_by_path_from_the_table_or_the_data_else_by_unique_name(
    tmp_path,
):
    root = tmp_path / 'data'
    for name in ('a/one.tif', 'a/two.tif', 'b/three.tif', 'b/four.tif', 'b/five.tif'):
        write_raster(root / name, random_chip(1), crs=None)
    table = tmp_path / 'tables' / 'where.csv'
    table.parent.mkdir()
    table.write_text(
        'path,lon,lat,datetime\n'
        '../data/a/one.tif,1,1,2020-01-01\n'  # relative to the table
        'a/two.tif,2,2,\n'  # relative to the data's root
        f'{root / "b" / "three.tif"},3,3,\n'  # absolute
        'elsewhere/four,4,4,\n'  # a unique name without its extension
        'x/five.tif,5,5,\n'  # a name two rows share matches nothing
        'y/five.tif,6,6,\n'
    )
    reader = MetadataReader(locations=table)
    with pytest.warns(UserWarning, match=r'where\.csv: 1 of 5 samples of .* are not'):
        index = index_source(root, tmp_path / 'i.gpkg', reader, progress=False)
    located = dict(zip(index['sample_id'], index['lon'], strict=True))
    assert located == {
        'a/one.tif': 1.0,
        'a/two.tif': 2.0,
        'b/three.tif': 3.0,
        'b/four.tif': 4.0,
        'b/five.tif': pytest.approx(float('nan'), nan_ok=True),
    }
    dated = index.set_index('sample_id')['datetime']
    assert dated['a/one.tif'] == pd.Timestamp('2020-01-01', tz='UTC')
    assert pd.isna(dated['a/two.tif'])


def test_the_data_wins_over_the_table(tmp_path):
    path = write_raster(tmp_path / 'data' / 'c' / 'geo.tif', random_chip(1))
    own = MetadataReader().read(path)
    table = tmp_path / 'where.csv'
    table.write_text('file,lon,lat\ngeo.tif,100,-10\n')
    listed = MetadataReader(locations=table).read(path)
    assert (listed.lon, listed.lat) == (own.lon, own.lat)


def test_the_index_is_read_again_when_the_table_changes(tmp_path):
    root = tmp_path / 'data'
    write_raster(root / 'c' / 'a.tif', random_chip(1), crs=None)
    table = tmp_path / 'where.csv'
    table.write_text('path,lon,lat\nc/a.tif,10,50\n')
    cache = tmp_path / 'i.gpkg'
    first = index_source(root, cache, MetadataReader(locations=table), progress=False)
    table.write_text('path,lon,lat\nc/a.tif,11,51\n')
    second = index_source(root, cache, MetadataReader(locations=table), progress=False)
    assert (first['lon'].iloc[0], second['lon'].iloc[0]) == (10.0, 11.0)


@pytest.mark.parametrize(
    ('text', 'message'),
    [
        ('path,lon,lat\na.tif,10,50\na.tif,11,50\n', "line 3: 'a.tif' is named twice"),
        ('path,lon,lat\na.tif,10,95\n', 'line 2: latitude 95 is outside -90..90'),
        ('path,lon,lat\na.tif,east,50\n', "line 2: lon 'east' is not a number"),
        ('path,lon,lat,datetime\na.tif,1,2,soon\n', "datetime 'soon' is not a date"),
        ('name,lon,lat\na.tif,1,2\n', 'lacks column(s) one of path/'),
        (',lon,lat\n,1,2\n', 'lacks column(s) one of path/'),
        ('path,lon,lat\n,1,2\n', 'line 2: the path is empty'),
    ],
)
def test_bad_tables_are_one_line_naming_the_row(tmp_path, text, message):
    table = tmp_path / 'where.csv'
    table.write_text(text)
    with pytest.raises(LabelsFileError, match=r'where\.csv: ') as error:
        LocationTable(table)
    assert message in str(error.value)
    assert '\n' not in str(error.value)


def test_unreadable_tables_are_one_line(tmp_path):
    parquet = tmp_path / 'where.parquet'
    parquet.write_bytes(b'PAR1 not really')
    with pytest.raises(LabelsFileError, match=r'where\.parquet: cannot be read as'):
        LocationTable(parquet)
    with pytest.raises(LabelsFileError, match=r'nowhere\.csv: does not exist'):
        LocationTable(tmp_path / 'nowhere.csv')


def test_a_table_naming_no_sample_is_refused(tmp_path):
    table = tmp_path / 'where.csv'
    table.write_text('path,lon,lat\nother.tif,1,2\n')
    samples = [(tmp_path / 'a.tif', 'a.tif')]
    with pytest.raises(GeosslInputError, match=r"names none of the 1 samples.*'path'"):
        LocationTable(table).check_names(samples, tmp_path)


def test_fit_takes_the_table_and_the_teacher_sees_location(tmp_path):
    root = tmp_path / 'data'
    rows = ['path,lon,lat']
    for c in range(2):
        for i in range(6):
            name = f'class{c}/tile{i}.tif'
            write_raster(root / name, random_chip(bands=3, size=16, seed=i), crs=None)
            rows.append(f'{name},{10 + i},{45 + c}')
    table = tmp_path / 'where.csv'
    table.write_text('\n'.join(rows) + '\n')
    run = tmp_path / 'run'
    arguments = [
        'fit',
        *['--data.root', str(root), '--data.locations', str(table)],
        *['--data.labels_per_class', '2', '--data.batch_size', '2', '--data.mu', '1'],
        *['--model.model', 'resnet10t', '--model.teacher', 'true'],
        *['--trainer.max_steps', '1', '--trainer.default_root_dir', str(run)],
    ]
    assert main(arguments) == 0
    checkpoint = next(run.rglob('last.ckpt'))
    hparams = torch.load(checkpoint, weights_only=True)
    assert hparams['hyper_parameters']['teacher']['metadata'] == 'location'


@pytest.mark.parametrize(
    'command',
    ['fit', 'validate', 'test', 'pretrain', 'embed', 'evaluate-representation'],
)
def test_every_command_that_reads_data_takes_the_table(command, capsys):
    with pytest.raises(SystemExit):
        main([command, '--help'])
    assert '--data.locations' in capsys.readouterr().out


def test_index_sidecar_is_the_old_name_of_locations(tmp_path):
    root = tmp_path / 'data'
    write_raster(root / 'c' / 'a.tif', random_chip(1), crs=None)
    table = tmp_path / 'where.csv'
    table.write_text('path,lon,lat,datetime\nc/a.tif,10,50,\n')
    output = tmp_path / 'i.gpkg'
    with pytest.warns(FutureWarning, match='--sidecar is deprecated'):
        assert (
            main(['index', str(root), '-o', str(output), '--sidecar', str(table)]) == 0
        )
    assert read_index(output)['lon'].tolist() == [10.0]
