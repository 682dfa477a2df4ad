"""Every real TIFF-family sample slide through the whole job: fail closed, but not on real output.

A rule that refuses real scanner output is a bug too. Each real slide in ../shared/fixtures
(aperio/, hamamatsu/, generic-tiff/, ome-tiff/) must reach the outbox with OpenSlide seeing the same
vendor, the same levels, the same optical properties and byte-identical tiles — except the two
that genuinely cannot be read: broken.svs is not a TIFF at all, and unopenable.tiff's tiles use
a compression (52479) no reader knows, so paw cannot look inside them for text (OpenSlide
refuses the file too).
"""

import os
import shutil

import openslide
import pytest

from conftest import shared_fixture

DELIVERED = [("aperio", "cmu-1-small-region.svs"), ("aperio", "small.svs"),
             ("aperio", "unreadable.svs"), ("hamamatsu", "test3-DAPI-2-(387).ndpi"),
             ("generic-tiff", "boxes.tiff"), ("ome-tiff", "CMU-1-Small-Region.bfconvert.ome.tiff")]
QUARANTINED = [(("aperio", "broken.svs"), "not a slide (text file)"),
               (("generic-tiff", "unopenable.tiff"), "compression 52479")]
OPTICS = ("openslide.vendor", "openslide.mpp-x", "openslide.mpp-y", "openslide.objective-power",
          "openslide.level-count", "openslide.bounds-width", "openslide.bounds-height")


def extra_levels(name):
    """Levels OpenSlide adds without a directory: NDPI's JPEG scale-down (1/2, 1/4, 1/8)."""
    return 3 if name.endswith(".ndpi") else 0


def view(path):
    """What a researcher's reader sees: optical properties, levels, associated images."""
    slide = openslide.OpenSlide(path)
    try:
        props = {k: slide.properties.get(k) for k in OPTICS}
        return props, slide.level_dimensions, sorted(slide.associated_images)
    finally:
        slide.close()


def image_digests(path):
    """SHA-256 of every image's stored payload (tiles or strips), one per directory."""
    import hashlib

    import tifffile
    digests = []
    with tifffile.TiffFile(path, is_ndpi=path.endswith(".ndpi")) as tf, open(path, "rb") as fh:
        for page in tf.pages:
            digest = hashlib.sha256()
            for offset, count in zip(page.dataoffsets, page.databytecounts):
                fh.seek(offset)
                digest.update(fh.read(count))
            digests.append(digest.hexdigest())
    return digests


def test_every_real_tiff_slide_reaches_the_outbox(lab):
    before = {}
    for folder, name in DELIVERED:
        path = os.path.join(lab.inbox, name)
        shutil.copyfile(shared_fixture(folder, name), path)
        os.chmod(path, 0o644)
        before[name] = (view(path), image_digests(path))
    assert lab.run() == 0
    rows = {row["original"]: row for row in lab.rows()}
    assert len(rows) == len(DELIVERED) and {r["status"] for r in rows.values()} == {"anonymized"}
    for name, ((props, levels, associated), tiles) in before.items():
        output = os.path.join(lab.outbox, rows[name]["output"])
        after_props, after_levels, after_associated = view(output)
        assert (after_props, after_levels) == (props, levels), name
        assert after_associated == [a for a in associated if a not in ("label", "macro")], name
        kept = image_digests(output)
        assert set(kept) <= set(tiles) and len(kept) == len(levels) - extra_levels(name) \
            + len(after_associated), name  # the kept images, byte for byte


@pytest.mark.parametrize("fixture, reason", QUARANTINED, ids=[f[1] for f, _ in QUARANTINED])
def test_real_files_that_cannot_be_read_are_quarantined_with_a_reason(lab, fixture, reason):
    path = os.path.join(lab.inbox, fixture[1])
    shutil.copyfile(shared_fixture(*fixture), path)
    assert lab.run() == 3
    row = lab.rows()[0]
    assert row["status"] == "quarantined" and reason in row["error"]
    with open(os.path.join(lab.quarantine, fixture[1]), "rb") as fh, open(shared_fixture(*fixture), "rb") as original:
        assert fh.read() == original.read()  # refused before anything was written
