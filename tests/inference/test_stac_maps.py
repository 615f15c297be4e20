"""STAC items over HTTP: search, index and map, as a user with internet runs them.

Everything is served from 127.0.0.1: the COGs with byte ranges, and a STAC API's
item search over the items.
"""

import json

import numpy as np
import rasterio
import shapely

from geossl.cli import main
from tests.inference.conftest import region_file
from tests.stac import ITEM, http_server, served_item


def test_search_index_and_map_over_http_fetch_a_fraction_and_match_local(
    served, scene_crop, s2_checkpoint, tmp_path, capsys
):
    root, files = served
    # A region of about 4 % of the crop, inside it.
    roi = region_file(
        tmp_path / 'roi.gpkg', shapely.box(441600, 4164900, 442100, 4165400)
    )
    with http_server(root, []) as (url, state):
        state.items = [served_item(url, files, root)]
        items = tmp_path / 'items.json'
        search = ['stac', 'search', '--url', url, '-o', str(items)]
        assert main([*search, '--bbox', '[-75.7, 37.6, -75.6, 37.7]']) == 0
        assert 'Found 1 sentinel-2-l2a items, 2023-05-02' in capsys.readouterr().out
        found = json.loads(items.read_text())['features']
        assert [feature['id'] for feature in found] == [ITEM]
        index = tmp_path / 'index.gpkg'
        assert main(['index', str(items), '-o', str(index)]) == 0
        assert 'Indexed 16 samples (scene layout' in capsys.readouterr().out
        # The same item by URL, its assets given relative to it.
        relative = json.loads(items.read_text())
        for asset in relative['features'][0]['assets'].values():
            asset['href'] = asset['href'].removeprefix(f'{url}/')
        (root / 'relative.json').write_text(json.dumps(relative))
        by_url = tmp_path / 'by-url.gpkg'
        assert main(['index', f'{url}/relative.json', '-o', str(by_url)]) == 0
        assert 'Indexed 16 samples (scene layout' in capsys.readouterr().out
        state.sent.clear()
        remote = tmp_path / 'remote.tif'
        args = ['map', str(s2_checkpoint), str(items), '-o', str(remote)]
        assert main([*args, '--roi', str(roi), '--probabilities', 'float16']) == 0
        fetched = state.bytes_sent('.tif')
    local = tmp_path / 'local.tif'
    args = ['map', str(s2_checkpoint), str(scene_crop), '-o', str(local)]
    assert main([*args, '--roi', str(roi), '--probabilities', 'float16']) == 0
    for suffix in ('', '_probabilities'):
        with (
            rasterio.open(remote.with_name(f'remote{suffix}.tif')) as a,
            rasterio.open(local.with_name(f'local{suffix}.tif')) as b,
        ):
            # The 2023 item's offset is applied: the same map as the 2016 files.
            np.testing.assert_array_equal(a.read(), b.read())
    total = sum(path.stat().st_size for path in files.values())
    assert fetched < 0.5 * total, (fetched, total)


def test_a_search_that_finds_nothing_or_an_asset_that_is_gone_is_one_line(
    served, s2_checkpoint, tmp_path, capsys
):
    root, files = served
    with http_server(root, []) as (url, state):
        item = served_item(url, files, root)
        state.items = [item]
        items = tmp_path / 'items.json'
        search = ['stac', 'search', '--url', url, '-o', str(items)]
        assert main([*search, '--bbox', '[10, 45, 11, 46]', '--max_cloud', '10']) == 2
        error = capsys.readouterr().err.strip()
        assert error.endswith(
            'found no items (collection sentinel-2-l2a, bbox [10.0, 45.0, 11.0, 46.0], '
            'max_cloud 10.0); nothing written'
        )
        assert not items.exists()
        item.assets['red'].href = f'{url}/cogs/gone.tif'
        items.write_text(json.dumps(item.to_dict()))
        output = tmp_path / 'map.tif'
        assert main(['map', str(s2_checkpoint), str(items), '-o', str(output)]) == 2
        (line,) = capsys.readouterr().err.strip().splitlines()
        assert (
            f'STAC item {ITEM} asset red ({url}/cogs/gone.tif): cannot be read' in line
        )
        assert 'HTTP response code: 404' in line
        assert not output.exists()
