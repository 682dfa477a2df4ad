"""3DHistech MRXS: the whole bundle (the .mrxs, Slidedat.ini, Index.dat, the data files), fail closed."""

import os
from types import SimpleNamespace

import pytest

from checks import mrxs_leaks, mrxs_tiles, openslide_view
from paw.errors import Unsupported
from paw.formats import prepare
from paw.verify import verify

OPTIONS = SimpleNamespace(keep_macro=False, full_scan=True)


def anonymize(path, options=OPTIONS, extra=()):
    module, plan, found = prepare(path, options)
    plan.apply(path)
    verify(path, module, plan, options, extra_values=extra)
    return module, plan, found


def _mrxs(tmp_path, **kwargs):
    from synth import mrxs
    path = str(tmp_path / "S26 slide.mrxs")
    return path, mrxs.write(path, **kwargs)



def test_mrxs_synthetic(tmp_path):
    path, planted = _mrxs(tmp_path)
    vendor, images, region = openslide_view(path)
    assert (vendor, images) == ("mirax", ["label", "macro", "thumbnail"])
    tiles = mrxs_tiles(path)
    module, plan, found = anonymize(path)
    assert mrxs_tiles(path) == tiles
    assert module.name == "mrxs" and found == {"macro": 1, "label": 1, "thumbnail": 1, "level": 4}
    assert mrxs_leaks(path, planted) == []
    assert openslide_view(path) == ("mirax", [], region)
    with open(os.path.join(path[:-5], "Slidedat.ini"), "rb") as fh:
        text = fh.read()
    assert text.startswith(b"\xef\xbb\xbf[GENERAL]\r\n") and b"\n" not in text.replace(b"\r\n", b"")


def test_mrxs_utf16_slidedat(tmp_path):
    path, planted = _mrxs(tmp_path, encoding="utf-16")
    anonymize(path)
    assert mrxs_leaks(path, planted) == []
    with open(os.path.join(path[:-5], "Slidedat.ini"), "rb") as fh:
        text = fh.read().decode("utf-16")
    assert "IMAGENUMBER_X=2\r\n" in text and "SLIDE_NAME=\r\n" in text


def test_mrxs_keep_macro(tmp_path):
    path, _ = _mrxs(tmp_path)
    anonymize(path, SimpleNamespace(keep_macro=True, full_scan=True))
    assert openslide_view(path)[1] == ["macro"]


@pytest.mark.parametrize("damage, reason", [
    (lambda folder: os.remove(os.path.join(folder, "Data0000.dat")), "missing"),
    (lambda folder: open(os.path.join(folder, "Slidedat.ini"), "wb").write(os.urandom(300)),
     "Slidedat.ini"),
    (lambda folder: open(os.path.join(folder, "Index.dat"), "r+b").truncate(50), "Index.dat"),
])
def test_damaged_mrxs_is_refused(tmp_path, damage, reason):
    path, _ = _mrxs(tmp_path)
    damage(path[:-5])
    with pytest.raises(Unsupported, match=reason):
        prepare(path, OPTIONS)


