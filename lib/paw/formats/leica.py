"""Leica SCN (SCN400, Aperio Versa), BigTIFF with the collection XML in directory 0.

OpenSlide (openslide-vendor-leica.c) detects a tiled directory 0 whose description is XML in
the namespace http://www.leica-microsystems.com/scn/2010/10/01 (or .../2010/03/10). Each
`collection/image` lists its `pixels/dimension` directories by `ifd` index; the image whose
`view` is at (0,0) with the collection's size is the macro (a photo of the whole slide, label
included). There is no separate label.

What paw does:
- the macro `<image>` is removed from the XML and its directories destroyed (directory 0, which
  holds the XML, is kept with its pixels zeroed); directories no kept image references (e.g.
  supplemental label images) are destroyed too; `ifd` references are renumbered to the new
  directory order;
- XML values: the collection and image names and uuids, the base64 barcode (searched for decoded
  too), creation dates and any text or attribute paw does not know are emptied; kept are
  geometry (sizes, offsets, spacing, ifd, r, z, c), the device model and software version,
  objective, numerical aperture and illumination source;
- every tag not image structure or product name is dropped (the description only in
  directory 0).
"""

import base64
import binascii
import re

from . import xmltext
from ..errors import FormatError
from .tifftags import PRODUCT, STRUCTURAL, Tag

NAME = "leica"
TITLE = "Leica SCN"
LABEL_PLACE = None  # OpenSlide shows no label for SCN, only the macro
ALLOWED_TAGS = STRUCTURAL | PRODUCT | {Tag.IMAGE_DESCRIPTION}
NAMESPACES = ("http://www.leica-microsystems.com/scn/2010/10/01",
              "http://www.leica-microsystems.com/scn/2010/03/10")
KEEP_ATTRIBUTES = frozenset({"sizeX", "sizeY", "sizeZ", "offsetX", "offsetY", "spacingZ",
                             "ifd", "r", "z", "c", "model", "version"})
KEEP_TEXT = frozenset({"objective", "numericalAperture", "illuminationSource"})
_NUMBER = re.compile(r"-?\d+(\.\d+)?")


def _root(description):
    root = xmltext.parse(description, "Leica description")
    if xmltext.local(root.tag) != "scn" or not any(root.tag == f"{{{ns}}}scn" for ns in NAMESPACES):
        raise FormatError("Leica description is not an SCN document")
    return root


def refused_variant(tiff):
    if "leica-microsystems.com/scn" in tiff.text(tiff.directories[0], Tag.IMAGE_DESCRIPTION)[:4096] \
            and not detect(tiff):
        return "Leica SCN variant (namespace or layout not understood)"
    return None


def detect(tiff):
    first = tiff.directories[0]
    return tiff.is_tiled(first) and any(ns in tiff.text(first, Tag.IMAGE_DESCRIPTION)[:4096]
                                        for ns in NAMESPACES)


def _children(element, name):
    return [c for c in element if xmltext.local(c.tag) == name]


def _is_macro(collection, image):
    view = _children(image, "view")
    if not view:
        return False
    v = view[0]
    return (v.get("offsetX") == "0" and v.get("offsetY") == "0"
            and v.get("sizeX") == collection.get("sizeX") and v.get("sizeY") == collection.get("sizeY"))


def _ifds(image):
    return [int(d.get("ifd", "-1")) for p in _children(image, "pixels") for d in _children(p, "dimension")]


def plan(tiff, surgery, options):
    first = tiff.directories[0]
    text = tiff.text(first, Tag.IMAGE_DESCRIPTION)
    root = _root(text)
    collections = _children(root, "collection")
    if len(collections) != 1:
        raise FormatError("Leica description without exactly one collection")
    collection = collections[0]
    kept_ifds = set()
    for image in _children(collection, "image"):
        if _is_macro(collection, image) and not options.keep_macro:
            collection.remove(image)
            surgery.count("macro")
        else:
            kept_ifds.update(_ifds(image))
            surgery.count("image")
    if not kept_ifds or max(kept_ifds) >= len(tiff.directories) or min(kept_ifds) < 0:
        raise FormatError("Leica XML refers to directories that do not exist")
    new_index, position = {}, 0
    for directory in tiff.directories:
        if directory.index in kept_ifds or directory.index == 0:
            new_index[directory.index] = position
            position += 1
    for image in _children(collection, "image"):
        for pixels in _children(image, "pixels"):
            for dimension in _children(pixels, "dimension"):
                dimension.set("ifd", str(new_index[int(dimension.get("ifd"))]))
    removed, names = _scrub_values(root)
    surgery.replace_ascii(first, Tag.IMAGE_DESCRIPTION, xmltext.serialize(root, text), removed)
    for name in names:
        surgery.note(name)
    for directory in tiff.directories:
        if directory.index not in kept_ifds:
            if directory.index == 0:
                surgery.blank(directory, "macro image")
            else:
                surgery.destroy(directory, "image no kept Leica image uses")
            continue
        if directory.index and Tag.IMAGE_DESCRIPTION in directory.entries:
            surgery.drop(directory, Tag.IMAGE_DESCRIPTION)
        surgery.drop_unlisted(directory, ALLOWED_TAGS)
    if 0 not in kept_ifds:
        surgery.drop_unlisted(first, ALLOWED_TAGS)


def _scrub_values(root):
    removed, names = [], []
    for element in root.iter():
        name = xmltext.local(element.tag)
        for key, value in element.attrib.items():
            if key not in KEEP_ATTRIBUTES and value.strip():
                removed.append(value)
                names.append(f"{name}@{key} emptied")
                element.set(key, "")
        text = (element.text or "").strip()
        if text and name not in KEEP_TEXT and not _NUMBER.fullmatch(text):
            removed.append(text)
            if name == "barcode":
                try:
                    removed.append(base64.b64decode(text, validate=True).decode("utf-8", "replace"))
                except (binascii.Error, ValueError):
                    pass
            names.append(f"{name} emptied")
            element.text = ""
    return removed, names


def check(tf, options, drawn=()):
    pages = list(tf.pages)
    try:
        root = _root(pages[0].description)
    except FormatError as exc:
        return [str(exc)]
    problems = []
    collection = _children(root, "collection")[0]
    for image in _children(collection, "image"):
        if _is_macro(collection, image) and not options.keep_macro:
            problems.append("the macro image is still in the XML")
        for ifd in _ifds(image):
            if not 0 <= ifd < len(pages) or not pages[ifd].is_tiled:
                problems.append(f"image refers to directory {ifd}, which is not a tiled image")
    for element in root.iter():
        name = xmltext.local(element.tag)
        if (element.text or "").strip() and name not in KEEP_TEXT and not _NUMBER.fullmatch(element.text.strip()):
            problems.append(f"{name} still has a value")
        for key, value in element.attrib.items():
            if key not in KEEP_ATTRIBUTES and value:
                problems.append(f"{name}@{key} still has a value")
    return problems
