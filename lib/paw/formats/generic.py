"""Generic tiled TIFF (OpenSlide's fallback reader), vendor-neutral pyramids.

OpenSlide (openslide-vendor-generic-tiff.c) needs a tiled directory 0; further tiled directories
are levels only if NewSubfileType has the reduced-image bit; there are no associated images.

What paw does:
- keeps directory 0 and the tiled reduced-image directories (the levels OpenSlide reads);
- destroys every other directory (stripped images, masks, anything a writer appended): OpenSlide
  ignores them and paw cannot tell whether one is a label photo;
- in the kept directories drops every tag that is not image structure or a product name:
  ImageDescription (free text), DateTime, Artist, HostComputer, DocumentName, PageName, XMP,
  IPTC, EXIF and GPS sub-directories, SubIFDs and all private tags.
OME-TIFF (OME-XML in the description) is refused: its OME-XML needs a scrubber of its own.
"""

from .tifftags import PRODUCT, STRUCTURAL, Tag

NAME = "generic-tiff"
TITLE = "generic tiled TIFF"
LABEL_PLACE = None  # no associated images at all
REDUCED = 1
ALLOWED_TAGS = STRUCTURAL | PRODUCT


def refused_variant(tiff):
    if "<OME" in tiff.text(tiff.directories[0], Tag.IMAGE_DESCRIPTION)[:4096]:
        return "OME-TIFF"
    return None


def detect(tiff):
    first = tiff.directories[0]
    return tiff.is_tiled(first)


def role(tiff, directory):
    if directory.index == 0:
        return "level"
    if tiff.is_tiled(directory) and tiff.number(directory, Tag.NEW_SUBFILE_TYPE, 0) & REDUCED:
        return "level"
    return "unknown"


def plan(tiff, surgery, options):
    for directory, kind in surgery.classify(role):
        if kind != "level":
            surgery.destroy(directory, "image OpenSlide does not read")
            continue
        surgery.drop_unlisted(directory, ALLOWED_TAGS)


def check(tf, options, drawn=()):
    problems = []
    pages = list(tf.pages)
    if not pages[0].is_tiled:
        problems.append("directory 0 is no longer tiled")
    for i, page in enumerate(pages):
        if i and not (page.is_tiled and page.subfiletype & REDUCED):
            problems.append(f"directory {i} is not a pyramid level")
        if page.description:
            problems.append(f"directory {i} still has a description")
    return problems
