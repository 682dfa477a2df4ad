"""Generic tiled TIFF (OpenSlide's fallback reader): vendor-neutral pyramids, and nothing else.

OpenSlide (openslide-vendor-generic-tiff.c) needs a tiled directory 0; further tiled directories
are levels only if NewSubfileType has the reduced-image bit; there are no associated images.

"Generic" is only for files that carry no vendor's metadata: a TIFF paw does not fully
understand is refused, never scrubbed as generic (scrubbing drops the description a vendor
reader needs, and paw cannot know what such a vendor hides where; OME-TIFF is ome.py's, tried
before this module). Refused by name: Trestle (Software `MedScan`, OpenSlide's trestle
reader), Huron (Make `Huron`), Argos (tag 65000), ImageJ, PerkinElmer QPI, Indica Labs;
refused by shape: a directory-0 ImageDescription
other than tifffile's own shape line, and any private tag (>= 32768) that is not image
structure or a baseline metadata tag paw drops anyway; refused by writer: any Make or Model (a
scanner or camera maker's file: Grundium, Olympus cellSens, Hamamatsu without NDPI tags — paw
does not know where such a writer puts its label or overview), and any Software but the generic
pyramid writers in GENERIC_WRITERS (an unknown converter may keep a vendor's images). The
refusal names the field, never its text.

What paw does with a generic pyramid:
- keeps directory 0 and the tiled reduced-image directories that are level 0 shrunk by a power
  of two with level 0's tile size (the levels OpenSlide reads);
- destroys every other directory (stripped images, masks, anything a writer appended):
  OpenSlide ignores them and paw cannot tell whether one is a label photo;
- keeps image structure only (typed, tiffallow.STRUCTURE); Make/Model/Software, DateTime,
  Artist, HostComputer, DocumentName, PageName, Copyright, XMP, IPTC, Photoshop, EXIF and GPS
  sub-directories go.
"""

from .allow import Pattern
from .tiffallow import STRUCTURE
from .tifftags import Tag

NAME = "generic-tiff"
TITLE = "generic tiled TIFF"
LABEL_PLACE = None  # no associated images at all
REDUCED = 1
TAGS = dict(STRUCTURE)

# What directory 0's description may say: nothing, or tifffile's shape line (a generic writer's).
DESCRIPTION = Pattern(r'|\{"shape": \[\d+(?:, \d+)*\]\}')
# Private tags generic files may carry and paw drops: copyright, IPTC, Photoshop, EXIF/GPS,
# ImageSourceData, Interoperability, ImageUniqueID (baseline or EXIF/TIFF-EP metadata).
DROPPED_PRIVATE = frozenset({Tag.COPYRIGHT, Tag.IPTC, Tag.PHOTOSHOP, Tag.EXIF_IFD, Tag.GPS_IFD,
                             Tag.IMAGE_SOURCE_DATA, Tag.INTEROPERABILITY_IFD, Tag.IMAGE_UNIQUE_ID})
# Writers of vendor-neutral pyramids (Software prefixes): tifffile (`tifffile.py` up to 2021,
# then `tifffile`), libvips (`vips`). Only these reach the generic table; Make and Model are
# never written by them, so either one names a writer paw does not know.
GENERIC_WRITERS = Pattern(r"(?:tifffile(?:\.py)?|vips|libvips)(?:[ /].*)?")
ARGOS_TAG = 65000
PRIVATE = 32768


def refused_variant(tiff):
    first = tiff.directories[0]
    description = tiff.text(first, Tag.IMAGE_DESCRIPTION)[:4096]
    if tiff.text(first, Tag.SOFTWARE).startswith("MedScan"):
        return "Trestle TIFF"
    if tiff.text(first, Tag.MAKE).startswith("Huron"):
        return "Huron TIFF"
    if ARGOS_TAG in first.entries:
        return "Argos TIFF"
    if description.startswith("ImageJ="):
        return "ImageJ TIFF"
    if tiff.text(first, Tag.SOFTWARE).startswith(("PerkinElmer-QPI", "IndicaLabs")):
        return "PerkinElmer/Indica Labs TIFF"
    return None


def unknown_vendor(tiff):
    """Why a tiled TIFF no vendor module claimed still looks like some vendor's, or None."""
    first = tiff.directories[0]
    if not DESCRIPTION.accepts(tiff.text(first, Tag.IMAGE_DESCRIPTION)):
        return "a TIFF whose description paw cannot read (an unknown vendor)"
    for directory in tiff.directories:
        for tag, name in ((Tag.MAKE, "Make"), (Tag.MODEL, "Model")):
            if tag in directory.entries:
                return f"a TIFF from a writer paw does not know ({name} is set)"
        if Tag.SOFTWARE in directory.entries and \
                not GENERIC_WRITERS.accepts(tiff.text(directory, Tag.SOFTWARE).split("\0", 1)[0]):
            return "a TIFF from a writer paw does not know (Software is not a generic pyramid writer)"
        for tag in directory.entries:
            if tag >= PRIVATE and tag not in STRUCTURE and tag not in DROPPED_PRIVATE:
                return f"a TIFF with private tag {int(tag)} (an unknown vendor)"
    return None


def detect(tiff):
    first = tiff.directories[0]
    return tiff.is_tiled(first)


def role(tiff, directory):
    from .aperio import _size, _tile, shrinks_by_power_of_two
    if directory.index == 0:
        return "level"
    first = tiff.directories[0]
    if tiff.is_tiled(directory) and tiff.number(directory, Tag.NEW_SUBFILE_TYPE, 0) & REDUCED \
            and _tile(tiff, directory)[:2] == _tile(tiff, first)[:2] \
            and shrinks_by_power_of_two(_size(tiff, first), _size(tiff, directory)):
        return "level"
    return "unknown"


def plan(tiff, surgery, options):
    for directory, kind in surgery.classify(role):
        if kind != "level":
            surgery.destroy(directory, "image OpenSlide does not read")
            continue
        surgery.keep_typed(directory, TAGS)


def check(tf, options, drawn=()):
    problems = []
    pages = list(tf.pages)
    if not pages[0].is_tiled:
        problems.append("directory 0 is no longer tiled")
    for i, page in enumerate(pages):
        if i and not (page.is_tiled and page.subfiletype & REDUCED):
            problems.append(f"directory {i} is not a pyramid level")
    return problems
