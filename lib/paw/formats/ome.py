"""OME-TIFF: the format labs convert slides to with Bio-Formats (bfconvert) and QuPath.

An OME-TIFF is a TIFF whose directory 0 ImageDescription is an OME-XML document (OME schema
2016-06). Readers find it by content: tifffile's rule (`TiffPage.is_ome`: the description ends
with `OME>`), Bio-Formats' OMETiffReader (the first directory's comment is OME-XML), and OpenSlide
reads the file as a generic tiled TIFF (directory 0 only). Each `Image` of the XML is one image
series; its `Pixels/TiffData` elements say which directories of the main chain hold its planes
(`IFD`, `PlaneCount`), and the pyramid levels of each plane are that directory's SubIFDs
(Bio-Formats OMETiffReader.addSubResolutions; PyramidOMETiffWriter). Bio-Formats copies the
original file's metadata into the XML: AcquisitionDate, Description, Experimenter, Image/@Name,
Plane stage positions, and every original key/value (file name, operator, dates, scanner
serials) as `StructuredAnnotations/XMLAnnotation` OriginalMetadata entries; the label and macro
of a slide become further `Image` elements ("label image", "macro image") with directories of
their own.

What paw keeps, by editing the XML in place in its raw text (xmltext.py: never re-serialised,
never longer), each value typed (ELEMENTS, from the 2016-06 schema's own types and enumerations):
- the one Image whose planes start at directory 0 (the one OpenSlide shows) with its Pixels
  geometry, PhysicalSize* and units, Channel names (a strict pattern, like CZI's), samples,
  wavelengths, colour and modes, TiffData plane numbers, Plane indexes, exposure and time;
  the Instrument's Objectives (magnification, NA, immersion, correction) and the Image's
  ObjectiveSettings; the root's namespace declarations, schema location and Creator (a writer's
  product pattern);
- every other attribute and element is cut out, with its text: Image/@Name, AcquisitionDate,
  Description, Experimenter(Group), Project/Dataset/Folder/Screen/Plate, ROI, every
  StructuredAnnotations entry (OriginalMetadata keys and values, MapAnnotation, comments,
  files), AnnotationRef, Microscope/Detector/LightSource/Filter (manufacturer, model, serial
  and lot numbers), Objective/@Model, Plane positions, StageLabel, elements and attributes of
  other namespaces, comments (Bio-Formats' warning too), processing instructions, CDATA and
  text outside elements;
- UUIDs: OME/@UUID is replaced by a fresh random one, and every TiffData/UUID element (with
  its FileName, the original file's name) is cut out: a TiffData without UUID means "this file"
  (OMETiffReader). A UUID that is not the file's own (a multi-file dataset) refuses the slide;
- every other Image is destroyed (Bio-Formats' label, macro and overview images, and any other
  series: they are not the slide's pyramid, and a hostile file may call its label "image 1"):
  its element is cut from the XML and its directories unlinked and zeroed, with their SubIFDs;
  so is any directory no Image lists. TiffData IFD numbers are renumbered when a destroyed
  directory came before a kept one;
- the kept directories' SubIFDs (its pyramid) stay where they are, and must be levels: tiled
  with level 0's tile size and codec, level 0 shrunk by a power of two, ever smaller;
- image structure only in every kept directory and SubIFD (the ImageJ description Bio-Formats
  writes in the others goes); Software only as `OME Bio-Formats n.n.n`.

Refused: a schema other than 2016-06, a prefixed (`ome:OME`) document, pixels inside the XML
(BinData, MetadataOnly), a BinaryOnly (companion) file, a multi-file dataset, a kept Image named
like a label or macro or whose planes are not tiled pyramids of its size, an untiled directory 0.

Sources: the OME 2016-06 schema (ome/ome-model released-schema/2016-06/ome.xsd: element and
attribute names, enumerations, units); Bio-Formats 7.3.1 OMETiffReader (TiffData, UUID and
FileName handling, SubIFD pyramids) and the image names its readers give associated images
(SVSReader, ZeissCZIReader, NDPIReader, CellSensReader, VentanaReader, AFIReader, LeicaSCN);
tifffile's OME writer; the real bfconvert output in ../shared/fixtures/ome-tiff and an
all-series conversion of the Aperio fixture; /work/notes/formats-czi-vsi-ome.md section 4.
"""

import re
import uuid

from . import xmltext
from ..errors import FormatError, Unsupported
from .allow import EMPTY, Integer, Number, OneOf, Pattern, XmlElement
from .tiff import MAX_SUB_DIRECTORIES
from .tiffallow import INTEGERS, STRUCTURE, Numbers, Text, Vendor
from .tifftags import Tag, Type

NAME = "ome-tiff"
TITLE = "OME-TIFF"
LABEL_PLACE = None  # OpenSlide shows none; a drawn label would be one more series
SCHEMA = "http://www.openmicroscopy.org/Schemas/OME/2016-06"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
OFFSETS = INTEGERS | {Type.IFD, Type.IFD8}

TAGS = {**STRUCTURE, Tag.IMAGE_DESCRIPTION: Vendor("ome description"),
        Tag.SUB_IFDS: Numbers(OFFSETS, count=None, most=MAX_SUB_DIRECTORIES, scan=False),
        Tag.SOFTWARE: Text(Pattern(r"OME Bio-Formats \d+(?:\.\d+)*(?:-SNAPSHOT)?"))}

DECLARATION = Pattern(r"""<\?xml version=["']1\.0["'](?: encoding=["'](?:UTF-8|utf-8)["'])?"""
                      r"""(?: standalone=["'](?:yes|no)["'])? ?\?>""")

# --- what may stay: OME-XML elements (local names, OME namespace) and their attributes ---------

_INT = Integer(low=0)
_COUNT = Integer(low=1)
_NUMBER = Number()
_BOOL = OneOf("true", "false")
# Units the schema allows (UnitsLength, UnitsTime): a unit paw cut would silently become the
# default (µm, s), so a unit of another shape refuses the slide.
LENGTH_UNITS = OneOf("Ym", "Zm", "Em", "Pm", "Tm", "Gm", "Mm", "km", "hm", "dam", "m", "dm", "cm", "mm",
                     "µm", "nm", "pm", "fm", "am", "zm", "ym", "Å", "thou", "li", "in", "ft", "yd", "mi",
                     "ua", "ly", "pc", "pt", "pixel", "reference frame")
TIME_UNITS = OneOf("Ys", "Zs", "Es", "Ps", "Ts", "Gs", "Ms", "ks", "hs", "das", "s", "ds", "cs", "ms",
                   "µs", "ns", "ps", "fs", "as", "zs", "ys", "min", "h", "d")


def _id(kind):
    """Bio-Formats' and tifffile's identifiers (`Image:0`, `Channel:0:1`); the schema allows
    `Kind:` + any non-space text, which could be a name."""
    return Pattern(rf"{kind}:\d{{1,6}}(?::\d{{1,6}}){{0,3}}")


# Channel and fluorophore names are the lab's vocabulary (DAPI, FITC, AF488, Alexa Fluor 488):
# kept only within this pattern (no comma, no path or date characters, at most 24 characters),
# the rule czi.py uses for the same names.
_CHANNEL_NAME = Pattern(r"[A-Za-z0-9][A-Za-z0-9 ._+-]{0,23}") | EMPTY

ELEMENTS = {
    "OME": XmlElement({"xmlns": OneOf(SCHEMA), "xmlns:xsi": OneOf(XSI),
                       "xsi:schemaLocation": OneOf(f"{SCHEMA} {SCHEMA}/ome.xsd"),
                       "UUID": Pattern(r"urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"),
                       "Creator": Pattern(r"OME Bio-Formats \d+(?:\.\d+)*(?:-SNAPSHOT)?|tifffile\.py \d+(?:\.\d+)*")},
                      required=frozenset({"xmlns"})),
    "Instrument": XmlElement({"ID": _id("Instrument")}, required=frozenset({"ID"})),
    "Objective": XmlElement({
        "ID": _id("Objective"), "NominalMagnification": Number(low=0, high=1000),
        "CalibratedMagnification": Number(low=0, high=1000), "LensNA": Number(low=0, high=2),
        "Immersion": OneOf("Oil", "Water", "WaterDipping", "Air", "Multi", "Glycerol", "Other"),
        "Correction": OneOf("UV", "PlanApo", "PlanFluor", "SuperFluor", "VioletCorrected", "Achro",
                            "Achromat", "Fluor", "Fl", "Fluar", "Neofluar", "Fluotar", "Apo",
                            "PlanNeofluar", "Other"),
        "WorkingDistance": _NUMBER, "WorkingDistanceUnit": LENGTH_UNITS, "Iris": _BOOL},
        required=frozenset({"ID", "WorkingDistanceUnit"})),
    "Image": XmlElement({"ID": _id("Image"), "Name": EMPTY}, required=frozenset({"ID"})),
    "InstrumentRef": XmlElement({"ID": _id("Instrument")}, required=frozenset({"ID"})),
    "ObjectiveSettings": XmlElement({
        "ID": _id("Objective"), "CorrectionCollar": _NUMBER, "RefractiveIndex": _NUMBER,
        "Medium": OneOf("Air", "Oil", "Water", "Glycerol", "Other")}, required=frozenset({"ID"})),
    "Pixels": XmlElement({
        "ID": _id("Pixels"),
        "DimensionOrder": OneOf("XYZCT", "XYZTC", "XYCTZ", "XYCZT", "XYTCZ", "XYTZC"),
        "Type": OneOf("int8", "int16", "int32", "uint8", "uint16", "uint32", "float", "double",
                      "complex", "double-complex", "bit"),
        "SignificantBits": _COUNT, "Interleaved": _BOOL, "BigEndian": _BOOL,
        "SizeX": _COUNT, "SizeY": _COUNT, "SizeZ": _COUNT, "SizeC": _COUNT, "SizeT": _COUNT,
        "PhysicalSizeX": Number(low=0), "PhysicalSizeY": Number(low=0), "PhysicalSizeZ": Number(low=0),
        "PhysicalSizeXUnit": LENGTH_UNITS, "PhysicalSizeYUnit": LENGTH_UNITS,
        "PhysicalSizeZUnit": LENGTH_UNITS, "TimeIncrement": _NUMBER, "TimeIncrementUnit": TIME_UNITS},
        required=frozenset({"ID", "DimensionOrder", "Type", "SizeX", "SizeY", "SizeZ", "SizeC", "SizeT",
                            "Interleaved", "BigEndian", "SignificantBits", "PhysicalSizeX", "PhysicalSizeY",
                            "PhysicalSizeZ", "PhysicalSizeXUnit", "PhysicalSizeYUnit",
                            "PhysicalSizeZUnit", "TimeIncrementUnit"})),
    "Channel": XmlElement({
        "ID": _id("Channel"), "Name": _CHANNEL_NAME, "Fluor": _CHANNEL_NAME,
        "SamplesPerPixel": _COUNT, "Color": Integer(low=-(1 << 31), high=(1 << 31) - 1),
        "IlluminationType": OneOf("Transmitted", "Epifluorescence", "Oblique", "NonLinear", "Other"),
        "ContrastMethod": OneOf("Brightfield", "Phase", "DIC", "HoffmanModulation",
                                "ObliqueIllumination", "PolarizedLight", "Darkfield", "Fluorescence",
                                "Other"),
        "AcquisitionMode": OneOf(
            "WideField", "LaserScanningConfocalMicroscopy", "SpinningDiskConfocal", "SlitScanConfocal",
            "MultiPhotonMicroscopy", "StructuredIllumination", "SingleMoleculeImaging",
            "TotalInternalReflection", "FluorescenceLifetime", "SpectralImaging",
            "FluorescenceCorrelationSpectroscopy", "NearFieldScanningOpticalMicroscopy",
            "SecondHarmonicGenerationImaging", "PALM", "STORM", "STED", "TIRF", "FSM", "LCM", "Other",
            "BrightField", "SweptFieldConfocal", "SPIM"),
        "ExcitationWavelength": Number(low=0), "ExcitationWavelengthUnit": LENGTH_UNITS,
        "EmissionWavelength": Number(low=0), "EmissionWavelengthUnit": LENGTH_UNITS,
        "PinholeSize": Number(low=0), "PinholeSizeUnit": LENGTH_UNITS, "NDFilter": _NUMBER,
        "PockelCellSetting": Integer()},
        required=frozenset({"ID", "SamplesPerPixel", "ExcitationWavelengthUnit",
                            "EmissionWavelengthUnit", "PinholeSizeUnit"})),
    "LightPath": XmlElement({}),
    "TiffData": XmlElement({"IFD": _INT, "PlaneCount": _INT, "FirstZ": _INT, "FirstT": _INT, "FirstC": _INT},
                           required=frozenset({"IFD", "PlaneCount", "FirstZ", "FirstT", "FirstC"})),
    "Plane": XmlElement({"TheZ": _INT, "TheT": _INT, "TheC": _INT, "DeltaT": _NUMBER,
                         "DeltaTUnit": TIME_UNITS, "ExposureTime": _NUMBER, "ExposureTimeUnit": TIME_UNITS},
                        required=frozenset({"TheZ", "TheT", "TheC", "DeltaTUnit", "ExposureTimeUnit"})),
}
# What the schema requires of Pixels (and readers need: tifffile fails without SizeC).
PIXELS_PRESENT = ("ID", "DimensionOrder", "Type", "SizeX", "SizeY", "SizeZ", "SizeC", "SizeT")
# Elements that mean the pixels are not (all) in this file: refused, never cut.
REFUSED = {"BinData": "pixel data inside the XML (BinData)",
           "MetadataOnly": "an image without pixel data (MetadataOnly)",
           "BinaryOnly": "a file whose OME-XML is in a companion file (BinaryOnly)"}
# Schema elements paw cuts and may name in the ledger (another element name is only counted:
# it is file text).
KNOWN_REMOVED = ("AcquisitionDate", "Description", "Experimenter", "ExperimenterGroup",
                 "ExperimenterRef", "ExperimenterGroupRef", "Project", "Dataset", "Folder",
                 "Experiment", "ExperimentRef", "Plate", "Screen", "ROI", "ROIRef",
                 "StructuredAnnotations", "AnnotationRef", "Rights", "StageLabel",
                 "ImagingEnvironment", "MicrobeamManipulationRef", "Microscope", "Detector",
                 "LightSource", "Laser", "Arc", "Filament", "LightEmittingDiode",
                 "GenericExcitationSource", "Filter", "FilterSet", "Dichroic", "DetectorSettings",
                 "LightSourceSettings", "FilterSetRef", "ExcitationFilterRef", "DichroicRef",
                 "EmissionFilterRef", "HashSHA1", "UUID")
# Schema attributes of kept elements paw cuts and may name in the ledger.
KNOWN_ATTRIBUTES = ("Manufacturer", "Model", "SerialNumber", "LotNumber", "PositionX", "PositionY",
                    "PositionZ", "PositionXUnit", "PositionYUnit", "PositionZUnit", "FileName")
# How Bio-Formats' readers name a slide's associated images (label image, macro image, macro
# mask image, overview image, label, overview, macro): for the ledger, and a kept Image may not
# be called so.
ASSOCIATED = re.compile(r"\s*(label|barcode|macro|overview|thumbnail|slide ?preview|preview|prescan)"
                        r"(?: mask)?(?: image)?(?: #\d+)?\s*", re.IGNORECASE)
ROLES = {"barcode": "label", "slide preview": "macro", "slidepreview": "macro", "preview": "macro",
         "prescan": "macro"}


def _description(tiff, directory):
    entry = directory.entries.get(Tag.IMAGE_DESCRIPTION)
    if entry is None or entry.type != Type.ASCII:
        return b""
    return tiff.raw_value(entry)


def is_ome(description):
    """tifffile's rule (TiffPage.is_ome): the description (bytes, up to its NUL) ends with `OME>`."""
    return description.split(b"\0", 1)[0][-10:].strip().endswith(b"OME>")


def refused_variant(tiff):
    first = tiff.directories[0]
    description = _description(tiff, first)
    if not (b"<OME" in description[:4096] or is_ome(description)) or detect(tiff):
        return None
    if not tiff.is_tiled(first):
        return "OME-TIFF whose first image is not tiled (OpenSlide cannot read it either)"
    return "OME-XML that does not end with its OME element (tifffile and Bio-Formats would not read it)"


def detect(tiff):
    first = tiff.directories[0]
    return tiff.is_tiled(first) and is_ome(_description(tiff, first))


# --- the XML ----------------------------------------------------------------------------------

def _document(description, what="OME-XML"):
    """(document, codec): the scanned XML of a description's bytes up to the first NUL, decoded
    as UTF-8 (the schema's encoding) or, failing that, Latin-1 (one character a byte: what is
    kept is written back as it was)."""
    raw = description.split(b"\0", 1)[0]
    try:
        text, codec = raw.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        text, codec = raw.decode("latin-1"), "latin-1"
    found = xmltext.scan(text, what)
    root = found.root
    if root.name != "OME":
        raise Unsupported("format not supported yet: OME-XML whose root is not an unprefixed OME element")
    if root.get("xmlns") != SCHEMA:
        raise Unsupported("format not supported yet: OME-XML of a schema other than 2016-06")
    return found, codec


def _children(element, name):
    return [c for c in element.children if c.name == name]


def _one(element, name, what):
    found = _children(element, name)
    if len(found) != 1:
        raise FormatError(f"OME-XML {what} without exactly one {name}")
    return found[0]


def _number(element, attribute, default, what):
    value = element.get(attribute)
    if value is None:
        return default
    if not _INT.accepts(value):
        raise FormatError(f"OME-XML {what} {attribute} is not a whole number")
    return int(value)


class Image:
    """One Image element: its Pixels, the main-chain directories its TiffData name, its role."""

    def __init__(self, element, position, own_uuid, directories):
        self.element, self.position = element, position
        what = f"Image {position}"
        self.pixels = _one(element, "Pixels", what)
        for name in PIXELS_PRESENT:
            if self.pixels.get(name) is None:
                raise FormatError(f"OME-XML {what} Pixels without {name}")
        self.size = (_number(self.pixels, "SizeX", 0, what), _number(self.pixels, "SizeY", 0, what))
        channels = _children(self.pixels, "Channel")
        samples = _number(channels[0], "SamplesPerPixel", 1, what) if channels else 1
        planes = (_number(self.pixels, "SizeZ", 1, what) * _number(self.pixels, "SizeT", 1, what)
                  * max(1, _number(self.pixels, "SizeC", 1, what) // max(1, samples)))
        self.tiff_data = _children(self.pixels, "TiffData")
        self.ifds = []
        for tiff_data in self.tiff_data:
            for reference in _children(tiff_data, "UUID"):
                if own_uuid is None or reference.text.strip() != own_uuid:
                    raise Unsupported("format not supported yet: a multi-file OME-TIFF dataset "
                                      "(TiffData in another file)")
            first = _number(tiff_data, "IFD", 0, what)
            if tiff_data.get("PlaneCount") is None and len(self.tiff_data) > 1:
                raise FormatError(f"OME-XML {what}: TiffData without PlaneCount")
            count = _number(tiff_data, "PlaneCount", planes, what)
            if first + count > directories:
                raise FormatError(f"OME-XML {what} refers to directories that do not exist")
            self.ifds += range(first, first + count)
        name = element.get("Name", "")
        match = ASSOCIATED.fullmatch(name)
        self.role = ROLES.get(match.group(1).lower(), match.group(1).lower()) if match else "image"


class Scrub:
    """The edits that leave an OME document with typed content and the kept Image only."""

    def __init__(self, document, kept, new_index):
        self.document, self.new_index = document, new_index
        self.edits, self.removed, self.names, self.unknown = [], [], [], 0
        declaration = document.declaration
        if declaration and not DECLARATION.accepts(document.text[declaration[0]:declaration[1]]):
            self._cut(declaration)
        for span in document.extra:
            self._cut(span)
            self.names.append("comments or text outside the elements")
        self._element(document.root, kept)

    def _cut(self, span):
        self.edits.append(xmltext.delete(span))
        self.removed.append(self.document.text[span[0]:span[1]].strip("<>!-?[] \r\n\t"))

    def _cut_element(self, element):
        self.edits.append(xmltext.delete((element.start, element.end)))
        for inner in element.iter():
            self.removed += [a.value for a in inner.attributes]
            self.removed += [t.strip() for _, _, t in inner.texts]

    def _element(self, element, kept):
        rule = ELEMENTS[element.name]
        for attribute in element.attributes:
            self._attribute(element, rule, attribute)
        for start, end, text in element.texts:
            if text.strip():
                self._cut((start, end))
                self.names.append(f"{element.name} text")
        for child in element.children:
            if child.name == "Image" and child is not kept:
                self._cut_element(child)
            elif child.name in REFUSED:
                raise Unsupported(f"format not supported yet: OME-TIFF with {REFUSED[child.name]}")
            elif ":" in child.name or child.name not in ELEMENTS:
                self._cut_element(child)
                if child.name in KNOWN_REMOVED:
                    self.names.append(f"XML: {child.name} removed")
                else:
                    self.unknown += 1
            else:
                self._element(child, kept)

    def _attribute(self, element, rule, attribute):
        name, value = attribute.name, attribute.value
        kind = rule.attribute(name)
        if element.name == "OME" and name == "UUID" and kind.accepts(value.lower()):
            fresh = f"urn:uuid:{uuid.uuid4()}"  # same length: the old one goes, nothing links back
            self.edits.append((*attribute.value_span, fresh))
            self.removed.append(value)
            self.names.append("XML: OME UUID replaced")
            return
        if element.name == "TiffData" and name == "IFD" and kind.accepts(value):
            new = str(self.new_index[int(value)])
            if new != value:
                self.edits.append((*attribute.value_span, new))
            return
        if element.name == "OME" and name == "xsi:schemaLocation" and element.get("xmlns:xsi") != XSI:
            kind = None  # its prefix's declaration goes: it must go too
        if kind is not None and kind.accepts(value):
            return
        if name in rule.required:
            raise FormatError(f"OME-XML {element.name} {name}: not {kind.label if kind else 'a value paw keeps'}")
        self.edits.append(xmltext.delete(attribute.span))
        self.removed.append(value)
        if kind is EMPTY or name in KNOWN_ATTRIBUTES:
            self.names.append(f"XML: {element.name} {name} removed")
        elif kind is None:
            self.unknown += 1  # an attribute's name is file text: counted, not named
        else:
            self.names.append(f"XML: {element.name} {name} removed (not {kind.label})")


# --- the plan ---------------------------------------------------------------------------------

def _levels(tiff, directory, size):
    """The directory's SubIFDs, each checked to be a pyramid level of `size`; FormatError if not."""
    from .aperio import _size, _tile, shrinks_by_power_of_two
    if not tiff.is_tiled(directory):
        raise FormatError(f"OME-TIFF {directory.name} is not tiled")
    if _size(tiff, directory) != size:
        raise FormatError(f"OME-TIFF {directory.name} is not the size its Image says")
    levels, previous = tiff.sub_directories(directory), size
    for level in levels:
        if not tiff.is_tiled(level) or _tile(tiff, level) != _tile(tiff, directory) \
                or not shrinks_by_power_of_two(size, _size(tiff, level)) \
                or not _size(tiff, level)[0] < previous[0]:
            raise FormatError(f"OME-TIFF {level.name} is not a pyramid level of its image")
        previous = _size(tiff, level)
    return levels


def plan(tiff, surgery, options):
    first = tiff.directories[0]
    raw = _description(tiff, first)
    found, codec = _document(raw)
    root = found.root
    if _children(root, "BinaryOnly"):
        raise Unsupported(f"format not supported yet: OME-TIFF with {REFUSED['BinaryOnly']}")
    own = root.get("UUID")
    images = [Image(element, n, own, len(tiff.directories))
              for n, element in enumerate(_children(root, "Image"))]
    kept = [image for image in images if 0 in image.ifds]
    if len(kept) != 1:
        raise FormatError("OME-XML without exactly one Image in directory 0")
    kept = kept[0]
    if kept.role != "image":
        raise Unsupported("refused: the OME-TIFF's first image is named as a label, macro or "
                          "overview image (paw keeps only the slide's pyramid, in directory 0)")
    kept_ifds = set(kept.ifds)
    if len(kept_ifds) != len(kept.ifds):
        raise FormatError("OME-XML Image in directory 0 names a directory twice")
    destroyed = {}
    for image in images:
        if image is not kept:
            if kept_ifds.intersection(image.ifds):
                raise FormatError(f"OME-XML Image {image.position} shares directories with the slide's image")
            destroyed.update((ifd, image.role) for ifd in image.ifds)
            surgery.count(image.role)
    new_index, position = {}, 0
    for directory in tiff.directories:
        if directory.index in kept_ifds:
            new_index[directory.index] = position
            position += 1
    levels = None
    for directory in tiff.directories:
        if directory.index not in kept_ifds:
            role = destroyed.get(directory.index)
            surgery.destroy(directory, f"{role} image" if role and role != "image"
                            else "image series that is not the slide's pyramid" if role
                            else "directory no OME-XML Image lists")
            if role is None:
                surgery.count("unlisted directory")
            continue
        children = _levels(tiff, directory, kept.size)
        if levels is None:
            levels = [tiff.number(c, Tag.IMAGE_WIDTH) for c in children]
        elif levels != [tiff.number(c, Tag.IMAGE_WIDTH) for c in children]:
            raise FormatError(f"OME-TIFF {directory.name} has other pyramid levels than directory 0")
        if directory.index:
            _drop_description(surgery, directory)
        surgery.keep_sub_directories(directory, children)
        for child in children:
            _drop_description(surgery, child)
            surgery.keep_typed(child, TAGS)
    surgery.found["level"] = 1 + len(levels)
    surgery.found["plane"] = len(kept_ifds)
    scrub = Scrub(found, kept.element, new_index)
    text = xmltext.splice(found.text, scrub.edits)
    removed = scrub.removed + [p.decode("latin-1") for p in raw.split(b"\0")[1:] if p.strip(b"\0")]
    surgery.replace_ascii(first, Tag.IMAGE_DESCRIPTION, text, [r for r in removed if _searched(r)], codec)
    for name in dict.fromkeys(scrub.names):
        surgery.note(name)
    if scrub.unknown:
        surgery.count_note("unknown XML attributes or elements removed", scrub.unknown)
    for directory in tiff.directories:  # after directory 0's description was replaced
        if directory.index in kept_ifds:
            surgery.keep_typed(directory, TAGS)


SEARCHED_LENGTH = 6  # as allow.MIN_RUN


def _searched(value):
    """Whether verification should search for a removed value of the XML: not when it is
    shorter than six characters. The original metadata's keys are words like `Date`, `User`,
    `JPEG`, and with verify.full_scan four given bytes occur by chance in a few GB of tiles
    (six: once in 10^14 bytes). The audit explains every text kept in the XML either way; the
    search is for a removed value that survived somewhere else."""
    return len(value.strip()) >= SEARCHED_LENGTH


def _drop_description(surgery, directory):
    if Tag.IMAGE_DESCRIPTION in directory.entries:
        surgery.drop(directory, Tag.IMAGE_DESCRIPTION, " (not directory 0)")


# --- independent check of the result (tifffile's view) -----------------------------------------

def check(tf, options, drawn=()):
    """Structure on tifffile's view of the output, read with ElementTree (not xmltext): one
    Image, named nothing, whose planes are every directory of the main chain and whose levels
    are their SubIFDs, shrinking by powers of two; no UUID reference, no label or macro series.
    (Every text left is explained by tiffaudit against ELEMENTS.)"""
    import xml.etree.ElementTree as ET

    from .aperio import shrinks_by_power_of_two
    pages = list(tf.pages)
    if not (pages[0].is_tiled and tf.is_ome):
        return ["no longer an OME-TIFF with a tiled first image"]
    try:
        root = ET.fromstring(pages[0].description)
    except ET.ParseError:
        return ["the OME-XML does not parse"]
    ns = {"ome": SCHEMA}
    images = root.findall("ome:Image", ns)
    problems = []
    if len(images) != 1:
        return [f"the OME-XML has {len(images)} images, not the slide's one"]
    if images[0].get("Name"):
        problems.append("the OME-XML Image still has a name")
    if root.findall(".//ome:UUID", ns):
        problems.append("the OME-XML still refers to files by UUID")
    listed = []
    for tiff_data in images[0].iterfind("ome:Pixels/ome:TiffData", ns):
        first, count = int(tiff_data.get("IFD", "0")), int(tiff_data.get("PlaneCount", "1"))
        listed += range(first, first + count)
    if sorted(listed) != list(range(len(pages))):
        problems.append("the main chain holds directories the OME-XML Image does not list")
    series = tf.series
    if len(series) != 1 or series[0].kind != "ome":
        problems.append(f"tifffile sees {len(series)} image series, not one OME image")
    for index, page in enumerate(pages):
        size = (page.imagewidth, page.imagelength)
        if size != (pages[0].imagewidth, pages[0].imagelength) or not page.is_tiled:
            problems.append(f"directory {index} is not a tiled image of the slide's size")
        previous, offsets = size, list(page.subifds or ())
        for level, offset in enumerate(offsets, 1):
            sub = _page_at(tf, offset, (index, level))
            sub_size = (sub.imagewidth, sub.imagelength)
            if not sub.is_tiled or not shrinks_by_power_of_two(size, sub_size) or sub_size[0] >= previous[0]:
                problems.append(f"directory {index} SubIFD {level} is not a pyramid level")
            if sub.subifds:
                problems.append(f"directory {index} SubIFD {level} has SubIFDs of its own")
            if _next_pointer(tf, sub) not in (0, offsets[level] if level < len(offsets) else 0):
                problems.append(f"directory {index} SubIFD {level}: its next pointer leads outside the SubIFDs")
            previous = sub_size
    return problems


def _page_at(tf, offset, index):
    import tifffile
    tf.filehandle.seek(offset)
    return tifffile.TiffPage(tf, index=index)


def _next_pointer(tf, page):
    """The next-directory offset after a page's table, read from the file."""
    import struct
    fmt = tf.tiff
    at = page.offset + fmt.tagnosize + len(page.tags) * fmt.tagsize
    tf.filehandle.seek(at)
    return struct.unpack(fmt.offsetformat, tf.filehandle.read(fmt.offsetsize))[0]
