from geossl.qgis import install_plugin
from geossl.qgis_plugin.runner import read_algorithms
from geossl.ssl.policies import algorithm_names


def test_train_offers_every_multi_class_algorithm_of_fit(tmp_path):
    # The plugin runs in QGIS's Python, without geossl: the install lists them.
    installed = install_plugin(tmp_path)
    offered = read_algorithms(installed)
    assert [name for name, _ in offered] == algorithm_names(multilabel=False)
    assert offered[0] == ('supervised', 'Supervised')
    assert ('fixmatch', 'FixMatch') in offered
