"""Leica SCN (SCN400, Aperio Versa), BigTIFF with the collection XML in directory 0.

OpenSlide (openslide-vendor-leica.c) detects a tiled directory 0 whose description is XML in
the namespace http://www.leica-microsystems.com/scn/2010/10/01 (or .../2010/03/10). Each
`collection/image` lists its `pixels/dimension` directories by `ifd` index; the image whose
`view` is at (0,0) with the collection's size is the macro (a photo of the whole slide, label
included). There is no separate label. Properties: the collection barcode, and per image
creationDate, device model/version, objective, numerical aperture, illumination source.

What paw keeps, each value typed (ELEMENTS), by editing the XML in place in its raw text
(xmltext.py: never re-serialised, never longer):
- the macro `<image>` is cut out and its directories destroyed (directory 0, which holds the
  XML, is kept with its pixels zeroed); directories no kept image references (supplemental
  label images) are destroyed too; `ifd` references are renumbered to the new directory order;
- an attribute stays only if ELEMENTS lists it for its element and its value has the listed
  type (sizes, offsets, spacing, ifd, r, z, c; the device model and software version as Leica
  product patterns); element text only for objective, numerical aperture (numbers) and
  illumination source (brightfield/fluorescence); everything else is cut out: collection and
  image names and uuids, the base64 barcode (its decoded text is searched for too),
  creationDate, elements paw does not know (channelSettings), comments, text after the root;
  a geometry value OpenSlide needs that is not a number refuses the slide;
- exactly one main image (every image that is not the macro), lit `brightfield`: OpenSlide
  hashes the smallest main dimension only for such a collection; with two or more main images
  (or a fluorescence one) it hashes the macro, so the output without the macro would not open,
  and a label photo can pose as a second main region. Such collections are refused whole
  (MAIN_IMAGES says why, in one line);
- kept images' dimensions must be pyramid levels (the largest shrunk by powers of two);
- every tag not image structure is dropped (the description only in directory 0).

Sources: OpenSlide's leica reader; Bio-Formats LeicaSCNHandler; the start of the real
Leica-Fluorescence-1.scn header quoted in NVIDIA nvImageCodec's tests;
/work/notes/tiff-fail-closed.md §3.5.
"""

import base64
import binascii

from . import xmltext
from ..errors import FormatError, Unsupported
from .allow import Integer, Number, OneOf, Pattern, XmlElement, element_rule
from .tiffallow import STRUCTURE, Vendor
from .tifftags import Tag

NAME = "leica"
TITLE = "Leica SCN"
LABEL_PLACE = None  # OpenSlide shows no label for SCN, only the macro
TAGS = {**STRUCTURE, Tag.IMAGE_DESCRIPTION: Vendor("leica description")}
NAMESPACES = ("http://www.leica-microsystems.com/scn/2010/10/01",
              "http://www.leica-microsystems.com/scn/2010/03/10")
XSI = "http://www.w3.org/2001/XMLSchema-instance"
_INT = Integer()
_SIZES = ("sizeX", "sizeY")
# Every kept number has the range real SCN files write (OpenSlide's Leica test data layout;
# /work/notes/tiff-fail-closed.md §3.5): the collection and views in nanometres on a slide
# (76000000 x 25000000), pixel sizes of a level, small indexes.
_NM = Integer(low=0, high=2 * 10 ** 8)
_PIXELS = Integer(low=1, high=10 ** 6)
_INDEX = Integer(low=0, high=1023)
TEXT = "#text"  # in XmlElement.required: the element's text is required
ELEMENTS = {
    "scn": XmlElement({"xmlns": OneOf(*NAMESPACES), "xmlns:xsi": OneOf(XSI),
                       "xsi:schemaLocation": Pattern("|".join(rf"{n} {n}/scn\.xsd" for n in NAMESPACES))},
                      required=frozenset({"xmlns"})),
    "collection": XmlElement({"sizeX": _NM, "sizeY": _NM}, required=frozenset(_SIZES)),
    "image": XmlElement({}),
    "device": XmlElement({
        "model": Pattern(r"Leica (?:SCN\d{3}F?|Aperio Versa(?: \d+)?)(?:;Leica (?:SCN|Aperio Versa))?"),
        "version": Pattern(r"\d+(?:\.\d+){3}(?: \d{4}/\d\d/\d\d \d\d:\d\d:\d\d)?(?:;\d+(?:\.\d+){3})*")}),
    "pixels": XmlElement({"sizeX": _PIXELS, "sizeY": _PIXELS}),
    "dimension": XmlElement({"sizeX": _PIXELS, "sizeY": _PIXELS, "r": _INDEX, "z": _INDEX, "c": _INDEX,
                             "ifd": _INDEX},
                            required=frozenset({"sizeX", "sizeY", "ifd"})),
    "view": XmlElement({"sizeX": _NM, "sizeY": _NM, "offsetX": _NM, "offsetY": _NM,
                        "spacingZ": Integer(low=0, high=10 ** 6)},
                       required=frozenset({"sizeX", "sizeY", "offsetX", "offsetY"})),
    "scanSettings": XmlElement({}),
    "objectiveSettings": XmlElement({}),
    "illuminationSettings": XmlElement({}),
    # OpenSlide compares the objective of main images with strcmp: it must not go missing
    # (an empty <objective/> crashes OpenSlide 4.0), so a bad value refuses the slide.
    "objective": XmlElement({}, text=Number(low=0, high=200), required=frozenset({TEXT})),  # 20, 0.60833
    "numericalAperture": XmlElement({}, text=Number(low=0, high=2)),       # 0.4, 0.75
    "illuminationSource": XmlElement({}, text=OneOf("brightfield", "fluorescence")),
}
DECLARATION = Pattern(r"""<\?xml version=["']1\.0["'](?: encoding=["'](?:UTF-8|utf-8)["'])? ?\?>""")


MAIN_IMAGES = ("Leica SCN with {count} main images (tissue regions) besides the macro: OpenSlide "
               "needs the macro photo to open such a slide, and paw removes it; only slides "
               "with one brightfield main image are supported")
NOT_BRIGHTFIELD = ("Leica SCN main image not lit brightfield: OpenSlide needs the macro photo "
                   "to open such a slide, and paw removes it")


def _document(description):
    document = xmltext.scan(description, "Leica description")
    root = document.root
    if root.local != "scn" or ":" in root.name or root.get("xmlns") not in NAMESPACES:
        raise FormatError("Leica description is not an SCN document")
    return document


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
    return [c for c in element.children if c.local == name]


def _is_macro(collection, image):
    view = _children(image, "view")
    if not view:
        return False
    v = view[0]
    return (v.get("offsetX") == "0" and v.get("offsetY") == "0"
            and v.get("sizeX") == collection.get("sizeX") and v.get("sizeY") == collection.get("sizeY"))


def _illumination(image):
    sources = [s for settings in _children(image, "scanSettings")
               for light in _children(settings, "illuminationSettings")
               for s in _children(light, "illuminationSource")]
    return sources[0].text.strip() if len(sources) == 1 else None


def _dimensions(image):
    return [d for p in _children(image, "pixels") for d in _children(p, "dimension")]


def _ifd(dimension):
    value = dimension.get("ifd", "")
    if not _INT.accepts(value):
        raise FormatError("Leica XML dimension without a numeric ifd")
    return int(value)


class Scrub:
    def __init__(self, document, new_index):
        self.document, self.new_index = document, new_index
        self.edits, self.removed, self.names, self.unknown = [], [], [], 0
        for span in document.extra:
            self._cut(span)
            self.names.append("comments or text outside the elements")
        self._element(document.root)

    def _cut(self, span):
        self.edits.append(xmltext.delete(span))
        self.removed.append(self.document.text[span[0]:span[1]].strip("<>!-?[] \r\n\t"))

    def _element(self, element):
        rule = element_rule(ELEMENTS, element.local) if ":" not in element.name else None
        if rule is None:
            if element.local == "barcode":
                self.names.append("barcode")
                try:
                    self.removed.append(base64.b64decode(element.text.strip(), validate=True).decode("utf-8", "replace"))
                except (binascii.Error, ValueError):
                    pass
            elif element.local == "creationDate":
                self.names.append("creationDate")
            else:
                self.unknown += 1
            self.removed.append(element.text.strip())
            self.edits.append(xmltext.delete((element.start, element.end)))
            return
        for attribute in element.attributes:
            kind = rule.attribute(attribute.name)
            if kind is not None and kind.accepts(attribute.value):
                if element.local == "dimension" and attribute.name == "ifd":
                    new = str(self.new_index[int(attribute.value)])
                    if new != attribute.value:
                        self.edits.append((*attribute.value_span, new))
                continue
            if attribute.name in rule.required:
                raise FormatError(f"Leica description: {element.local} {attribute.name} is not {kind.label}")
            self.edits.append(xmltext.delete(attribute.span))
            self.removed.append(attribute.value)
            if kind is None and attribute.name in ("name", "uuid", "barcode", "ocr"):
                self.names.append(f"{element.local} {attribute.name}")
            elif kind is None:
                self.unknown += 1
            else:
                self.names.append(f"{element.local} {attribute.name} (not {kind.label})")
        if not (rule.text is not None and rule.text.accepts(element.text.strip())):
            if TEXT in rule.required:
                raise FormatError(f"Leica description: {element.local} is not {rule.text.label}")
            for start, end, text in element.texts:
                if text.strip():
                    self._cut((start, end))
                    self.names.append(f"{element.local} text")
        for child in element.children:
            self._element(child)


def _check_geometry(tiff, images):
    """Each kept image's z=0 dimensions are its largest shrunk by powers of two, with one tile size."""
    from .aperio import _size, _tile, shrinks_by_power_of_two
    for image in images:
        directories = [tiff.directories[_ifd(d)] for d in _dimensions(image) if d.get("z", "0") == "0"]
        if not directories:
            continue
        base = max(directories, key=lambda d: _size(tiff, d)[0])
        for directory in directories:
            if not tiff.is_tiled(directory) or _tile(tiff, directory)[:2] != _tile(tiff, base)[:2] or \
                    not shrinks_by_power_of_two(_size(tiff, base), _size(tiff, directory), same_size=True):
                raise FormatError(f"directory {directory.index} is not a pyramid level of its Leica image")


def plan(tiff, surgery, options):
    first = tiff.directories[0]
    document = _document(tiff.text(first, Tag.IMAGE_DESCRIPTION))
    collections = _children(document.root, "collection")
    if len(collections) != 1:
        raise FormatError("Leica description without exactly one collection")
    collection = collections[0]
    kept_ifds, macros, kept_images = set(), [], []
    for image in _children(collection, "image"):
        if _is_macro(collection, image) and not options.keep_macro:
            macros.append(image)
            surgery.count("macro")
        else:
            kept_ifds.update(_ifd(d) for d in _dimensions(image))
            kept_images.append(image)
            surgery.count("image")
    mains = [image for image in _children(collection, "image") if not _is_macro(collection, image)]
    if len(mains) != 1:
        raise Unsupported(f"refused: {MAIN_IMAGES.format(count=len(mains))}")
    if _illumination(mains[0]) != "brightfield":
        raise Unsupported(f"refused: {NOT_BRIGHTFIELD}")
    if not kept_ifds or max(kept_ifds) >= len(tiff.directories) or min(kept_ifds) < 0:
        raise FormatError("Leica XML refers to directories that do not exist")
    _check_geometry(tiff, kept_images)
    new_index, position = {}, 0
    for directory in tiff.directories:
        if directory.index in kept_ifds or directory.index == 0:
            new_index[directory.index] = position
            position += 1
    for image in macros:  # their dimensions' ifd values are never renumbered: the image goes
        for dimension in _dimensions(image):
            new_index.setdefault(_ifd(dimension), 0)
    scrub = Scrub(document, new_index)
    scrub.edits.extend(xmltext.delete((image.start, image.end)) for image in macros)
    surgery.replace_ascii(first, Tag.IMAGE_DESCRIPTION, xmltext.splice(document.text, scrub.edits),
                          scrub.removed)
    for name in scrub.names:
        surgery.note(f"XML: {name} removed")
    if scrub.unknown:
        surgery.count_note("unknown XML attributes or elements removed", scrub.unknown)
    if macros:
        surgery.note("macro image removed from the XML")
    for directory in tiff.directories:
        if directory.index not in kept_ifds:
            if directory.index == 0:
                surgery.blank(directory, "macro image")
            else:
                surgery.destroy(directory, "image no kept Leica image uses")
            continue
        if directory.index and Tag.IMAGE_DESCRIPTION in directory.entries:
            surgery.drop(directory, Tag.IMAGE_DESCRIPTION)
        surgery.keep_typed(directory, TAGS)
    if 0 not in kept_ifds:
        surgery.keep_typed(first, TAGS)


def check(tf, options, drawn=()):
    """Structure OpenSlide needs; every text left is explained by tiffaudit against ELEMENTS."""
    pages = list(tf.pages)
    try:
        document = _document(pages[0].description)
    except FormatError as exc:
        return [str(exc)]
    problems = []
    collection = _children(document.root, "collection")[0]
    mains = [image for image in _children(collection, "image") if not _is_macro(collection, image)]
    if len(mains) != 1 or _illumination(mains[0]) != "brightfield":
        problems.append("the XML does not have exactly one brightfield main image (OpenSlide would need the macro)")
    for image in _children(collection, "image"):
        if _is_macro(collection, image) and not options.keep_macro:
            problems.append("the macro image is still in the XML")
        for dimension in _dimensions(image):
            ifd = _ifd(dimension)
            if not 0 <= ifd < len(pages) or not pages[ifd].is_tiled:
                problems.append(f"image refers to directory {ifd}, which is not a tiled image")
    return problems
