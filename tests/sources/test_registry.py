"""open_source picks sources; plugins come by entry point; a broken plugin only warns."""

from __future__ import annotations

import numpy as np
import pytest

from xlive.sources import list_sources, open_source
from xlive.sources._template import TemplateSource


def test_template_source_as_plugin(tmp_path, install_plugin):
    install_plugin({"xlive.sources": {"testplugin": "xlive.sources._template:TemplateSource"}})
    assert list_sources()["testplugin"] is TemplateSource
    run = tmp_path / "npy"
    run.mkdir()
    for i in range(3):
        np.save(run / f"f{i:03d}.npy", np.full((4, 5), i, np.uint16))
    src = open_source(run)  # chosen through guess_can_open
    assert isinstance(src, TemplateSource) and src.refresh() == 3
    np.save(run / "f003.npy", np.full((4, 5), 3, np.uint16))  # the run grows
    assert src.refresh() == 4
    np.testing.assert_array_equal(src.frames().values[:, 0, 0], [0, 1, 2, 3])


def test_broken_plugin_is_a_warning(tmp_path, install_plugin):
    from xlive.registry import PluginWarning

    install_plugin({"xlive.sources": {"testplugin": "xlive_no_such_module:Nothing"}})
    with pytest.warns(PluginWarning, match="testplugin"):
        found = list_sources()
    assert "zarr" in found and "testplugin" not in found


def test_kind_forces_a_source(tmp_path):
    import zarr

    g = zarr.open_group(str(tmp_path / "store"), mode="w")  # no .zarr suffix
    g.create_array("frames", shape=(1, 2, 3), dtype="uint8", fill_value=0)
    assert type(open_source(tmp_path / "store", kind="zarr")).__name__ == "ZarrSource"


def test_address_sources_are_asked_by_their_prefix():
    """The registry skips the address-only built-ins (without importing them) for targets
    that lack their prefix; the sources themselves agree on the prefix."""
    from xlive.registry import ADDRESS_PREFIXES, SOURCES, guess_source

    for name, prefix in ADDRESS_PREFIXES.items():
        source = SOURCES.get(name)
        assert source.guess_can_open(prefix + "127.0.0.1:9999")
        assert not source.guess_can_open("/data/run")
        assert guess_source(prefix + "127.0.0.1:9999") == name
