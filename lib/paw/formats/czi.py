"""Zeiss CZI (ZISRAW): ZEN's format, written by Axio Scan slide scanners and ZEN microscopes.

A CZI is a chain of segments, each a 32-byte header (16-byte ASCII Id, int64 AllocatedSize,
int64 UsedSize) and AllocatedSize bytes of data, every segment starting at a multiple of 32
(libCZI CziStructs.h, CziParse.cpp; checked on three ZEN files: the walk from byte 0 ends
exactly at the end of the file). Segment kinds:

  ZISRAWFILE       the header at 0: version, file GUIDs, positions of the subblock directory,
                   the metadata segment and the attachment directory
  ZISRAWDIRECTORY  one DV entry per subblock (pixel type, position, compression, dimensions)
  ZISRAWSUBBLOCK   a copy of its entry, a small XML (<METADATA><Tags>: stage position, focus,
                   acquisition time), then the pixel data
  ZISRAWMETADATA   the document's XML (<ImageDocument>): user name, dates, experiment, devices,
                   file paths in the audit trail, and the geometry and optics readers need
  ZISRAWATTDIR     one A1 entry (content type, name) per attachment
  ZISRAWATTACH     an attachment: Thumbnail (JPEG), TimeStamps, EventList (free text), and on
                   slide scanners Label and SlidePreview, which are whole CZI files themselves
                   (Bio-Formats shows them as "label image" and "macro image")
  DELETED          a segment ZEN gave up; its old bytes stay (libCZI never zeroes them)

Readers find things differently: libCZI (pylibCZIrw, aicspylibczi) and slideio follow the
header's positions and the directories, Bio-Formats walks every segment (it reads every
metadata segment and subblock it meets). So paw walks every segment too and keeps the
directories consistent.

What paw does, in place (nothing moves; every write has the old length):
- the metadata XML is rebuilt from the allow-list XML_KEEP (geometry, pixel type, channels,
  objective, scaling, display ranges: each value typed), indented, and padded with spaces to the
  old XmlSize; everything else goes (Document: UserName, CreationDate, Name, Title, Comment,
  Description; User; Experiment; HardwareSetting; CustomAttributes with the audit trail's file
  paths; scene names; session ids; serial numbers; dates). Typed means: names only from the
  optics vocabularies (a channel name that is not one becomes "Channel N", NEUTRAL; a Fluor or
  objective name that is not one goes), enumerations from ZEN's lists, every number within its
  physical range, Size<D> the subblock directory's extent of D (DIRECTORY_SIZES: what a reader
  could compute itself). A leaf whose text goes is left out, never written empty (Bio-Formats
  reads <Value/> as a number and stops), and a scaling item without its value goes whole
  (REQUIRED);
- every subblock's XML keeps only the numeric tags of SUBBLOCK_KEEP, padded the same way
  (acquisition time goes);
- one TimeStamps attachment stays when it is a list of times (typed_timestamps): written
  relative to the first plane, rounded to the microsecond, with a fresh ContentGuid. Every other
  attachment is destroyed: the segment becomes DELETED, its bytes are zeroed and its directory
  entry removed (Label, SlidePreview, Thumbnail, EventList, Prescan, a TimeStamps that is not a
  list of times, a second TimeStamps, anything unknown);
- DELETED segments, every spare/reserved field and the slack after each segment's content are
  zeroed; the file GUIDs become one fresh random GUID (they link the copy to the original);
- subblock pixel data is never read or written (the audit reads a sample of JPEG and JPEG XR
  subblocks whole for text: cziaudit).

Refused (one line, quarantined): a version other than 1.0, a multi-part file, an unknown
segment Id, a segment off the 32-byte grid or past the end, a second live directory or metadata
segment, a subblock no directory entry lists, legacy DE directory entries, subblock
attachments, XML that does not parse or has a DOCTYPE.
"""

import math
import os
import re
import struct
import uuid
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field

from .. import ranges
from ..errors import FormatError
from . import optics
from .allow import Integer, Number, OneOf, Pattern
from .base import Handler, Prepared
from .edits import EditPlan

# --- layout (libCZI CziStructs.h, little-endian, packed) ---------------------------------------

ALIGN = 32
HEADER = 32                    # Id[16], AllocatedSize int64, UsedSize int64
FILE, DIRECTORY, SUBBLOCK = b"ZISRAWFILE", b"ZISRAWDIRECTORY", b"ZISRAWSUBBLOCK"
METADATA, ATTDIR, ATTACH, DELETED = b"ZISRAWMETADATA", b"ZISRAWATTDIR", b"ZISRAWATTACH", b"DELETED"
KNOWN_IDS = (FILE, DIRECTORY, SUBBLOCK, METADATA, ATTDIR, ATTACH, DELETED)
VERSION = (1, 0)               # the only Major.Minor paw has seen (ZEN 2.3 to 3.12)

FILE_DATA = 512                # Major, Minor, 2 reserved, PrimaryFileGuid, FileGuid, FilePart,
FILE_FIELDS = "<iiii16s16siqqiq"  # DirectoryPosition, MetadataPosition, UpdatePending,
FILE_USED = struct.calcsize(FILE_FIELDS)  # AttachmentDirectoryPosition; then spare to 512
DIRECTORY_DATA = 128           # EntryCount int32, spare
METADATA_DATA = 256            # XmlSize int32, AttachmentSize int32, spare
SUBBLOCK_DATA = 256            # minimum fixed part: sizes, DV entry copy, padding
ATTDIR_DATA = 256              # EntryCount int32, spare
ATTACH_DATA = 256              # DataSize int64, spare[8], A1 entry copy (128), spare
ATTACH_ENTRY = 128             # SchemaType "A1", spare[10], FilePosition int64, FilePart int32,
ATTACH_FIELDS = "<2s10sqi16s8s80s"  # ContentGuid, ContentFileType[8], Name[80]
DV_FIXED = 32                  # SchemaType "DV", PixelType, FilePosition, FilePart, Compression,
DV_FIELDS = "<2siqii6si"       # spare[6] (pyramid type), DimensionCount; then 20 bytes a dimension
DV_SPARE, DV_SPARE_LENGTH = 23, 5   # spare bytes after the pyramid type: zeroed
DIMENSION = 20                 # Dimension char[4], Start, Size, StartCoordinate float, StoredSize
MAX_DIMENSIONS = 40            # libCZI MAXDIMENSIONS
DIMENSION_LETTERS = frozenset("XYZCTRIHVBSM")
PIXEL_TYPES = {0: "Gray8", 1: "Gray16", 2: "Gray32Float", 3: "Bgr24", 4: "Bgr48", 8: "Bgr96Float",
               9: "Bgra32", 10: "Gray64ComplexFloat", 11: "Bgr192ComplexFloat", 12: "Gray32",
               13: "Gray64"}
COMPRESSIONS = {0: "uncompressed", 1: "JPEG", 2: "LZW", 4: "JPEG XR", 5: "zstd", 6: "zstd"}
JPEG_COMPRESSION = 1
MAX_SEGMENTS = 10_000_000
MAX_XML = 64 << 20

# --- what may stay: the document XML (paths below <ImageDocument>) ------------------------------

CONTAINER = None                # an element kept for its children; its own text must be empty
# Numbers, each within what it can physically be (a date or an accession number typed into a
# kept field is out of range there and goes; one within the range cannot be told from a value).
_WAVELENGTH = Number(low=0, high=10000)                 # nm
_EXPOSURE = Number(low=0, high=1e13)                    # ZEN writes ns or ms
_APERTURE = Number(low=0, high=2)                       # numerical aperture
_MAGNIFICATION = Number(low=0, high=1000)
_DISTANCE_UM = Number(low=0, high=1e6)                  # working distance, µm
_REFRACTIVE_INDEX = Number(low=0, high=5)
_POSITION = Number(low=-1e7, high=1e7)                  # stage, focus and Z positions, µm
_DISPLAY_LIMIT = Number(low=-1e6, high=1e6)             # display range (relative or grey level)
_GAMMA = Number(low=0, high=100)
_BITS = Integer(low=0, high=64)
_QUALITY = Integer(low=0, high=100)
_INDEX = Integer(low=0, high=1_000_000)
_SCALING = Number(low=0, high=1000)                     # metres (or seconds) per pixel
# Image sizes are numbers the subblock directory fixes: SizeX of a 640-pixel image is 640.
# The scrubber writes the directory's value (DIRECTORY_SIZES) and the audit checks it.
_SIZE = Integer(low=0, high=1 << 31)
_PIXEL_TYPE = OneOf(*PIXEL_TYPES.values())
_COLOR = Pattern(r"#[0-9A-Fa-f]{6}(?:[0-9A-Fa-f]{2})?")
# ZEN's enumerations (OME 2016-06 names, which ZEN writes, and the fixtures' own values).
_ILLUMINATION = OneOf("Transmitted", "Epifluorescence", "Fluorescence", "Oblique", "NonLinear",
                      "Reflected", "Other")
_CONTRAST = OneOf("Brightfield", "Phase", "DIC", "HoffmanModulation", "ObliqueIllumination",
                  "PolarizedLight", "Darkfield", "Fluorescence", "MultiPhotonFluorescence", "Other")
_ACQUISITION_MODE = OneOf(
    "WideField", "LaserScanningConfocalMicroscopy", "SpinningDiskConfocal", "SlitScanConfocal",
    "MultiPhotonMicroscopy", "StructuredIllumination", "SingleMoleculeImaging",
    "TotalInternalReflection", "FluorescenceLifetime", "SpectralImaging",
    "FluorescenceCorrelationSpectroscopy", "NearFieldScanningOpticalMicroscopy",
    "SecondHarmonicGenerationImaging", "PALM", "STORM", "STED", "TIRF", "FSM", "LCM",
    "BrightField", "SweptFieldConfocal", "SPIM", "Airyscan", "Other")
_IMMERSION = OneOf("Air", "Oil", "Water", "WaterDipping", "Glycerol", "Silicone", "Multi", "Other")
_CHANNEL_ID = Pattern(r"Channel:\d{1,4}")
# Channel and dye names, objective names: only names built from the optics vocabularies
# (optics.py: DAPI, AF488, Alexa Fluor 488, EGFP-T1; Plan-Apochromat 20x/0.8). A channel name
# that is not one becomes "Channel N" (NEUTRAL: viewers list channels by name); a Fluor or an
# objective name that is not one is removed (no reader needs it).
_CHANNEL_NAME = optics.CHANNEL_NAME
_OBJECTIVE_NAME = optics.OBJECTIVE_NAME
_CHANNEL = "Metadata/Information/Image/Dimensions/Channels/Channel"
_DISPLAY = "Metadata/DisplaySetting/Channels/Channel"
_OBJECTIVE = "Metadata/Information/Instrument/Objectives/Objective"

XML_KEEP = {
    "Metadata": CONTAINER,
    "Metadata/Information": CONTAINER,
    "Metadata/Information/Image": CONTAINER,
    **{f"Metadata/Information/Image/Size{d}": _SIZE for d in "XYZCTSMHBRIV"},
    "Metadata/Information/Image/PixelType": _PIXEL_TYPE,
    "Metadata/Information/Image/ComponentBitCount": _BITS,
    "Metadata/Information/Image/OriginalCompressionMethod":
        OneOf("Uncompressed", "Jpg", "JpgXr", "Zstd0", "Zstd1", "Lzw", "Camera"),
    "Metadata/Information/Image/OriginalEncodingQuality": _QUALITY,
    "Metadata/Information/Image/Dimensions": CONTAINER,
    "Metadata/Information/Image/Dimensions/Channels": CONTAINER,
    _CHANNEL: CONTAINER,
    f"{_CHANNEL}/@Id": _CHANNEL_ID,
    f"{_CHANNEL}/@Name": _CHANNEL_NAME,
    f"{_CHANNEL}/Fluor": _CHANNEL_NAME,
    f"{_CHANNEL}/ExcitationWavelength": _WAVELENGTH,
    f"{_CHANNEL}/EmissionWavelength": _WAVELENGTH,
    f"{_CHANNEL}/ExposureTime": _EXPOSURE,
    f"{_CHANNEL}/EffectiveNA": _APERTURE,
    f"{_CHANNEL}/IlluminationType": _ILLUMINATION,
    f"{_CHANNEL}/ContrastMethod": _CONTRAST,
    f"{_CHANNEL}/AcquisitionMode": _ACQUISITION_MODE,
    f"{_CHANNEL}/Color": _COLOR,
    f"{_CHANNEL}/PixelType": _PIXEL_TYPE,
    f"{_CHANNEL}/ComponentBitCount": _BITS,
    f"{_CHANNEL}/IlluminationWavelength": CONTAINER,
    f"{_CHANNEL}/IlluminationWavelength/SinglePeak": _WAVELENGTH,
    f"{_CHANNEL}/DetectionWavelength": CONTAINER,
    f"{_CHANNEL}/DetectionWavelength/SinglePeak": _WAVELENGTH,
    "Metadata/Information/Image/Dimensions/S": CONTAINER,
    "Metadata/Information/Image/Dimensions/S/Scenes": CONTAINER,
    "Metadata/Information/Image/Dimensions/S/Scenes/Scene": CONTAINER,
    "Metadata/Information/Image/Dimensions/S/Scenes/Scene/@Index": _INDEX,
    "Metadata/Information/Image/Dimensions/Z": CONTAINER,
    "Metadata/Information/Image/Dimensions/Z/StartPosition": _POSITION,
    "Metadata/Information/Image/Dimensions/Z/Positions": CONTAINER,
    "Metadata/Information/Image/Dimensions/Z/Positions/Interval": CONTAINER,
    "Metadata/Information/Image/Dimensions/Z/Positions/Interval/Start": _POSITION,
    "Metadata/Information/Image/Dimensions/Z/Positions/Interval/Increment": _POSITION,
    "Metadata/Information/Image/ObjectiveSettings": CONTAINER,
    "Metadata/Information/Image/ObjectiveSettings/ObjectiveRef": CONTAINER,
    "Metadata/Information/Image/ObjectiveSettings/ObjectiveRef/@Id": Pattern(r"Objective:\d{1,4}"),
    "Metadata/Information/Image/ObjectiveSettings/Medium": _IMMERSION,
    "Metadata/Information/Image/ObjectiveSettings/RefractiveIndex": _REFRACTIVE_INDEX,
    "Metadata/Information/Instrument": CONTAINER,
    "Metadata/Information/Instrument/Objectives": CONTAINER,
    _OBJECTIVE: CONTAINER,
    f"{_OBJECTIVE}/@Id": Pattern(r"Objective:\d{1,4}"),
    f"{_OBJECTIVE}/@Name": _OBJECTIVE_NAME,
    f"{_OBJECTIVE}/LensNA": _APERTURE,
    f"{_OBJECTIVE}/NominalMagnification": _MAGNIFICATION,
    f"{_OBJECTIVE}/WorkingDistance": _DISTANCE_UM,
    f"{_OBJECTIVE}/ImmersionRefractiveIndex": _REFRACTIVE_INDEX,
    f"{_OBJECTIVE}/Immersion": _IMMERSION,
    "Metadata/Information/Instrument/TubeLenses": CONTAINER,
    "Metadata/Information/Instrument/TubeLenses/TubeLens": CONTAINER,
    "Metadata/Information/Instrument/TubeLenses/TubeLens/@Id": Pattern(r"TubeLens:\d{1,4}"),
    "Metadata/Information/Instrument/TubeLenses/TubeLens/Magnification": _MAGNIFICATION,
    "Metadata/Scaling": CONTAINER,
    "Metadata/Scaling/Items": CONTAINER,   # slideio crashes without Items (or without Channels)
    **{f"Metadata/Scaling/Items/{item}{leaf}": kind
       for item in ("Distance", "Pixel")
       for leaf, kind in (("", CONTAINER), ("/@Id", OneOf("X", "Y", "Z", "T")), ("/Value", _SCALING),
                          ("/DefaultUnitFormat", OneOf("µm", "um", "nm", "mm", "m", "s", "ms")))},
    "Metadata/DisplaySetting": CONTAINER,
    "Metadata/DisplaySetting/Channels": CONTAINER,
    _DISPLAY: CONTAINER,
    f"{_DISPLAY}/@Id": _CHANNEL_ID,
    f"{_DISPLAY}/@Name": _CHANNEL_NAME,
    f"{_DISPLAY}/Low": _DISPLAY_LIMIT,
    f"{_DISPLAY}/High": _DISPLAY_LIMIT,
    f"{_DISPLAY}/Gamma": _GAMMA,
    f"{_DISPLAY}/BitCountRange": _BITS,
    f"{_DISPLAY}/PixelType": _PIXEL_TYPE,
    f"{_DISPLAY}/Color": _COLOR,
    f"{_DISPLAY}/OriginalColor": _COLOR,
}
ROOT = "ImageDocument"
# A channel name no vocabulary explains is replaced by this (N counts the element among its
# siblings from 1), so a viewer still lists "Channel 1", "Channel 2".
NEUTRAL = {f"{_CHANNEL}/@Name": optics.NEUTRAL_CHANNEL, f"{_DISPLAY}/@Name": optics.NEUTRAL_CHANNEL}
# An element that lost what makes it mean anything is dropped whole: a scaling item without its
# value (ZEN's NaN, or a value out of range). A leaf whose text goes is never written empty
# (Bio-Formats parses <Value/> as a number and stops: "empty String").
REQUIRED = {f"Metadata/Scaling/Items/{item}": ("Value",) for item in ("Distance", "Pixel")}
# Size<D> under Information/Image: the directory's extent of dimension D (1 when absent).
DIRECTORY_SIZES = {f"Metadata/Information/Image/Size{d}": d for d in "XYZCTSMHBRIV"}

# Subblock XML (paths below <METADATA>): stage and focus positions only (Bio-Formats reads them);
# AcquisitionTime and anything else goes.
SUBBLOCK_KEEP = {
    "Tags": CONTAINER,
    **{f"Tags/{name}": _POSITION for name in ("StageXPosition", "StageYPosition", "FocusPosition",
                                              "RoiCenterOffsetX", "RoiCenterOffsetY")},
    "Tags/ExposureTime": _EXPOSURE,
    "DataSchema": CONTAINER,
    "AttachmentSchema": CONTAINER,
}
SUBBLOCK_ROOT = "METADATA"

# Attachments that stay: (ContentFileType, Name) -> what their payload is. TimeStamps: int32
# size, int32 count, count float64 seconds (czifile read_time_stamps; Bio-Formats reads it for
# plane times). Everything else is destroyed.
TIMESTAMPS = (b"CZTIMS", b"TimeStamps")
KEPT_ATTACHMENTS = frozenset({TIMESTAMPS})
# Roles of destroyed attachments, by name (Bio-Formats ZeissCZIReader: a name starting with
# "label" is the label image, "slidepreview" the macro image).
ATTACHMENT_ROLES = (("label", "label"), ("slidepreview", "macro"), ("thumbnail", "thumbnail"),
                    ("prescan", "macro"))


def attachment_role(name):
    lowered = name.lower()
    for prefix, role in ATTACHMENT_ROLES:
        if lowered.startswith(prefix):
            return role
    return "attachment"


def ascii_field(raw):
    return raw.split(b"\0", 1)[0]


# --- reading ----------------------------------------------------------------------------------

@dataclass
class Segment:
    offset: int
    id: bytes
    allocated: int
    used: int

    @property
    def data(self):
        return self.offset + HEADER

    @property
    def end(self):
        return self.offset + HEADER + self.allocated


def detect(path):
    if not os.path.isfile(path):
        return False
    with open(path, "rb") as fh:
        return fh.read(16) == FILE.ljust(16, b"\0")


def _read(fd, offset, length):
    data = os.pread(fd, length, offset)
    if len(data) != length:
        raise FormatError("CZI segment runs past the end of the file")
    return data


def walk(fd, size):
    """Every segment from byte 0 to the end of the file (FormatError on anything unexpected)."""
    segments, position = [], 0
    while position < size:
        if len(segments) >= MAX_SEGMENTS:
            raise FormatError("CZI has an implausible number of segments")
        head = _read(fd, position, HEADER) if position + HEADER <= size else b""
        if len(head) < HEADER:
            raise FormatError("CZI ends inside a segment header")
        ident, allocated, used = head[:16], *struct.unpack_from("<qq", head, 16)
        name = ascii_field(ident)
        if name not in KNOWN_IDS or ident != name.ljust(16, b"\0"):
            raise FormatError(f"CZI segment at byte {position} has an unknown Id")
        if allocated < 0 or allocated % ALIGN or not 0 <= used <= allocated:
            raise FormatError(f"CZI segment at byte {position} has an impossible size")
        if position + HEADER + allocated > size:
            raise FormatError(f"CZI segment at byte {position} runs past the end of the file")
        segments.append(Segment(position, name, allocated, used))
        position += HEADER + allocated
    return segments


def _xml(data, what, root_name):
    try:
        text = data.decode("utf-8", "strict")
    except UnicodeDecodeError:
        raise FormatError(f"{what}: XML is not UTF-8") from None
    if "<!DOCTYPE" in text or "<!ENTITY" in text:
        raise FormatError(f"{what}: XML with a DOCTYPE is refused")
    try:
        root = ET.fromstring(text.strip("\0 \r\n\t"))
    except ET.ParseError:
        raise FormatError(f"{what}: XML does not parse") from None
    if root.tag != root_name:
        raise FormatError(f"{what}: the XML root is not <{root_name}>")
    return root


def scrub_xml(root, keep, neutral=None, required=None):
    """A new tree holding only the elements and attributes `keep` lists with values its kinds
    accept; and the texts left out. An attribute `neutral` names is replaced by its neutral
    value (numbered by the element's place among its siblings) instead of removed; a leaf whose
    text goes is left out whole (never written empty), and so is an element `required` says
    needs a child it no longer has."""
    removed = []
    neutral, required = neutral or {}, required or {}

    def copy(element, path, index):
        new = ET.Element(element.tag)
        for name, value in element.attrib.items():
            key = f"{path}/@{name}" if path else f"@{name}"
            kind = keep.get(key, False)
            if kind and kind.accepts(value):
                new.set(name, value)
                continue
            if value.strip():
                removed.append(value)
            if key in neutral:
                new.set(name, neutral[key].format(index + 1))
        text = (element.text or "").strip()
        kind = keep.get(path) if path else CONTAINER
        if kind is not CONTAINER:
            if not (text and kind.accepts(text)):
                removed.extend(t.strip() for t in element.itertext() if t.strip())
                return None
            new.text = text
        elif text:
            removed.append(text)
        seen = {}
        for child in element:
            child_path = f"{path}/{child.tag}" if path else child.tag
            place = seen[child.tag] = seen.get(child.tag, -1) + 1
            kept = copy(child, child_path, place) if child_path in keep else None
            if kept is not None:
                new.append(kept)
            elif child_path not in keep:
                removed.extend(t.strip() for t in child.itertext() if t.strip())
                removed.extend(v for e in child.iter() for v in e.attrib.values() if v.strip())
        if any(new.find(name) is None for name in required.get(path, ())):
            removed.extend(t.strip() for t in new.itertext() if t.strip())
            return None
        return new

    return copy(root, "", 0), removed


def set_directory_sizes(root, extents, sizes=None):
    """Write the subblock directory's extent into every Size<D> element `sizes` names (the
    value a reader could compute itself; any other number there goes). `extents` maps a
    dimension letter to its extent; a dimension the directory lacks has extent 1. The values
    replaced are returned."""
    replaced = []
    for path, letter in (DIRECTORY_SIZES if sizes is None else sizes).items():
        for element in root.findall(path):
            wanted = str(extents.get(letter, 1))
            if (element.text or "").strip() != wanted:
                if (element.text or "").strip():
                    replaced.append(element.text.strip())
                element.text = wanted
    return replaced


def directory_extents(entries):
    """{dimension letter: extent} over the DV entries: max(start + size) - min(start)."""
    low, high = {}, {}
    for entry in entries:
        for i in range(struct.unpack_from("<i", entry, 28)[0]):
            letter, start, size = struct.unpack_from("<4sii", entry, DV_FIXED + DIMENSION * i)
            letter = ascii_field(letter).decode("latin-1")
            low[letter] = min(low.get(letter, start), start)
            high[letter] = max(high.get(letter, start + size), start + size)
    return {letter: high[letter] - low[letter] for letter in low}


def serialize_padded(root, size, indent=True):
    """The tree as UTF-8 (CRLF line ends, as ZEN writes), padded with spaces to `size` bytes.
    Indentation keeps Bio-Formats' flattened keys readable; without it if it does not fit."""
    for spaced in ((True, False) if indent else (False,)):
        tree = ET.ElementTree(root)
        if spaced:
            ET.indent(tree, "  ")
        text = ET.tostring(root, encoding="unicode", short_empty_elements=True).replace(" />", "/>")
        data = text.replace("\n", "\r\n").encode("utf-8") if spaced else text.encode("utf-8")
        if len(data) <= size:
            return data + b" " * (size - len(data))
        for element in root.iter():  # undo the indentation before trying without
            if element.text is not None and not element.text.strip():
                element.text = None
            element.tail = None
    raise FormatError("scrubbed CZI metadata would be longer than the original")


@dataclass
class Czi:
    """A walked CZI: its segments and what the header and directories say."""
    segments: list
    size: int
    directory: Segment = None
    metadata: Segment = None
    attdir: Segment = None
    subblocks: dict = field(default_factory=dict)     # offset -> DV entry bytes (from directory)
    attachments: list = field(default_factory=list)   # (entry index, entry bytes, Segment)


def parse(fd, size):
    segments = walk(fd, size)
    if not segments or segments[0].id != FILE or segments[0].allocated < FILE_DATA:
        raise FormatError("CZI does not start with its file header")
    fields = struct.unpack_from(FILE_FIELDS, _read(fd, HEADER, FILE_USED))
    major, minor, _, _, _, _, part, dir_pos, meta_pos, pending, att_pos = fields
    if (major, minor) != VERSION:
        raise FormatError(f"CZI version {major}.{minor} is one paw has not seen")
    if part != 0:
        raise FormatError("multi-part CZI (a file of several parts) is not supported")
    if pending != 0:
        raise FormatError("CZI header says an update is pending (the file was not closed)")
    by_offset = {s.offset: s for s in segments}
    czi = Czi(segments, size)
    for position, kind, name in ((dir_pos, DIRECTORY, "directory"), (meta_pos, METADATA, "metadata"),
                                 (att_pos, ATTDIR, "attachment directory")):
        segment = by_offset.get(position) if position else None
        if position and (segment is None or segment.id != kind):
            raise FormatError(f"CZI header's {name} position does not point at one")
        live = [s for s in segments if s.id == kind]
        if len(live) > (1 if segment else 0):
            raise FormatError(f"CZI has a {name} segment its header does not point to")
        setattr(czi, {DIRECTORY: "directory", METADATA: "metadata", ATTDIR: "attdir"}[kind], segment)
    if czi.directory is None or czi.metadata is None:
        raise FormatError("CZI has no subblock directory or no metadata segment")
    for entry in directory_entries(fd, czi.directory):
        position = struct.unpack_from("<q", entry, 6)[0]
        target = by_offset.get(position)
        if target is None or target.id != SUBBLOCK or position in czi.subblocks:
            raise FormatError("CZI directory entry does not point at a subblock of its own")
        czi.subblocks[position] = entry
    if len(czi.subblocks) != sum(1 for s in segments if s.id == SUBBLOCK):
        raise FormatError("CZI holds a subblock no directory entry lists")
    if czi.attdir is not None:
        for index, entry in enumerate(attachment_entries(fd, czi.attdir)):
            position = struct.unpack_from("<q", entry, 12)[0]
            target = by_offset.get(position)
            if target is None or target.id != ATTACH:
                raise FormatError("CZI attachment entry does not point at an attachment")
            czi.attachments.append((index, entry, target))
    return czi


def directory_entries(fd, segment):
    """The DV entries of the subblock directory, as bytes each."""
    data = _read(fd, segment.data, segment.allocated)
    (count,) = struct.unpack_from("<i", data, 0)
    if count < 0:
        raise FormatError("CZI directory has a negative entry count")
    entries, position = [], DIRECTORY_DATA
    for _ in range(count):
        if position + DV_FIXED > len(data):
            raise FormatError("CZI directory entries run past their segment")
        schema = data[position:position + 2]
        if schema != b"DV":
            raise FormatError("CZI directory entry of a schema other than DV (legacy DE) is not supported")
        dims = struct.unpack_from("<i", data, position + 28)[0]
        if not 0 < dims <= MAX_DIMENSIONS or position + DV_FIXED + DIMENSION * dims > len(data):
            raise FormatError("CZI directory entry has an impossible dimension count")
        length = DV_FIXED + DIMENSION * dims
        entries.append(data[position:position + length])
        position += length
    return entries


def directory_end(entries):
    return DIRECTORY_DATA + sum(len(e) for e in entries)


def attachment_entries(fd, segment):
    data = _read(fd, segment.data, segment.allocated)
    (count,) = struct.unpack_from("<i", data, 0)
    if count < 0 or ATTDIR_DATA + ATTACH_ENTRY * count > len(data):
        raise FormatError("CZI attachment directory has an impossible entry count")
    entries = [data[ATTDIR_DATA + ATTACH_ENTRY * i:ATTDIR_DATA + ATTACH_ENTRY * (i + 1)] for i in range(count)]
    for entry in entries:
        if entry[:2] != b"A1":
            raise FormatError("CZI attachment entry of a schema other than A1")
    return entries


def subblock_layout(fd, segment):
    """(fixed part length, MetadataSize, DataSize, AttachmentSize) of a subblock segment."""
    head = _read(fd, segment.data, min(segment.allocated, SUBBLOCK_DATA))
    if len(head) < 16 + DV_FIXED:
        raise FormatError("CZI subblock is too short")
    meta, attachment, data = struct.unpack_from("<iiq", head, 0)
    if head[16:18] != b"DV":
        raise FormatError("CZI subblock's entry copy is not of the DV schema")
    dims = struct.unpack_from("<i", head, 16 + 28)[0]
    if not 0 < dims <= MAX_DIMENSIONS:
        raise FormatError("CZI subblock has an impossible dimension count")
    fixed = max(SUBBLOCK_DATA, 16 + DV_FIXED + DIMENSION * dims)
    if min(meta, attachment, data) < 0 or fixed + meta + data + attachment > segment.allocated:
        raise FormatError("CZI subblock's parts run past its segment")
    return fixed, meta, data, attachment


# --- the plan ---------------------------------------------------------------------------------

class _Edits:
    def __init__(self):
        self.plan = EditPlan(layout=[])
        self.found = {}
        self.kept_xml = ""

    def zero(self, offset, length):
        if length > 0:
            self.plan.zeros.append((offset, length))

    def write(self, offset, data):
        self.plan.writes.append((offset, bytes(data)))

    def count(self, role):
        self.found[role] = self.found.get(role, 0) + 1


def _plan(path):
    edits = _Edits()
    removed = []
    with open(path, "rb") as fh:
        fd = fh.fileno()
        size = os.fstat(fd).st_size
        czi = parse(fd, size)
        timestamps = _kept_timestamps(fd, czi)
        destroyed = {s.offset for _, _, s in czi.attachments if s.offset not in timestamps}
        listed = {s.offset for _, _, s in czi.attachments}
        extents = directory_extents(czi.subblocks.values())
        for segment in czi.segments:
            if segment.id == FILE:
                guid = uuid.uuid4().bytes_le
                edits.write(HEADER + 16, guid + guid)   # PrimaryFileGuid and FileGuid
                edits.zero(HEADER + 8, 8)               # two reserved int32
                edits.zero(HEADER + FILE_USED, segment.allocated - FILE_USED)
            elif segment.id == DIRECTORY:
                entries = directory_entries(fd, segment)
                end = directory_end(entries)
                position = segment.data + DIRECTORY_DATA
                for entry in entries:
                    edits.zero(position + DV_SPARE, DV_SPARE_LENGTH)
                    position += len(entry)
                edits.zero(segment.data + 4, DIRECTORY_DATA - 4)
                edits.zero(segment.data + end, segment.allocated - end)
            elif segment.id == METADATA:
                removed += _plan_metadata(fd, segment, edits, extents)
            elif segment.id == SUBBLOCK:
                removed += _plan_subblock(fd, segment, czi.subblocks[segment.offset], edits)
            elif segment.id == ATTDIR:
                _plan_attdir(czi, segment, timestamps, edits)
            elif segment.id == ATTACH and segment.offset in timestamps:
                _plan_kept_attachment(segment, *timestamps[segment.offset], edits)
            elif segment.id == ATTACH:
                entry = _read(fd, segment.data + 16, ATTACH_ENTRY)
                edits.count(attachment_role(ascii_field(entry[48:128]).decode("latin-1")))
                edits.write(segment.offset, DELETED.ljust(16, b"\0"))
                edits.zero(segment.data, segment.allocated)
            elif segment.id == DELETED:
                edits.zero(segment.data, segment.allocated)
    plan = edits.plan
    # A removed word that the kept XML still holds as vocabulary ("Center" in RoiCenterOffsetX)
    # is not searched for; the audit explains every kept text on its own.
    vocabulary = " ".join([edits.kept_xml, *SUBBLOCK_KEEP, SUBBLOCK_ROOT,
                           *(b.decode() for pair in KEPT_ATTACHMENTS for b in pair)])
    # Verification's search ignores case, so does this test.
    vocabulary = vocabulary.lower()
    plan.removed = sorted({v for v in removed if _searchable(v) and v.lower() not in vocabulary})
    plan.actions = ["metadata XML rebuilt from the allow-list (user, dates, experiment, devices, "
                    "file paths removed)", "file GUID replaced"]
    if timestamps:
        plan.actions.append("TimeStamps made relative to the first plane, GUID replaced")
    if any(s.id == SUBBLOCK for s in czi.segments):
        plan.actions.append("subblock XML reduced to stage and focus positions")
    for role in ("label", "macro", "thumbnail", "attachment"):
        if edits.found.get(role):
            plan.actions.append(f"{role} {'attachments' if role == 'attachment' else 'image'} destroyed")
    edits.found["subblock"] = len(czi.subblocks)
    plan.kept_data = ranges.as_pairs(ranges.merge(plan.kept_data)) if plan.kept_data else []
    return Prepared(plan, edits.found)


def _searchable(value):
    """Removed values verification searches for: not numbers or single words a kept field may
    hold by chance (the audit explains every kept text on its own)."""
    value = value.strip()
    return len(value) >= 4 and not re.fullmatch(r"[-+.\deE,: ]+|true|false|True|False|NaN", value)


def _plan_metadata(fd, segment, edits, extents):
    xml_size, attachment = struct.unpack_from("<ii", _read(fd, segment.data, 8))
    if xml_size < 0 or attachment < 0 or METADATA_DATA + xml_size + attachment > segment.allocated \
            or xml_size > MAX_XML:
        raise FormatError("CZI metadata segment sizes do not fit the segment")
    root = _xml(_read(fd, segment.data + METADATA_DATA, xml_size), "CZI metadata", ROOT)
    new, removed = scrub_xml(root, XML_KEEP, NEUTRAL, REQUIRED)
    removed += set_directory_sizes(new, extents)
    start = segment.data + METADATA_DATA
    edits.write(start, serialize_padded(new, xml_size))
    if attachment:  # a binary metadata attachment: unknown content, destroyed
        edits.write(segment.data + 4, struct.pack("<i", 0))
    edits.zero(segment.data + 8, METADATA_DATA - 8)
    edits.zero(start + xml_size, segment.allocated - METADATA_DATA - xml_size)
    edits.kept_xml = ET.tostring(new, encoding="unicode")
    return removed


def _plan_subblock(fd, segment, entry, edits):
    """One write per subblock: its fixed part (sizes, the entry with cleared spare bytes, zero
    padding) followed by its scrubbed XML; the slack after the pixel data is zeroed."""
    fixed, meta, data, attachment = subblock_layout(fd, segment)
    if attachment:
        raise FormatError("CZI subblock carries an attachment (a schema paw does not know)")
    head = _read(fd, segment.data, fixed + meta)
    copy = head[16:16 + len(entry)]
    if copy[:6] != entry[:6] or copy[14:DV_SPARE] != entry[14:DV_SPARE] or copy[28:] != entry[28:]:
        raise FormatError("CZI subblock disagrees with its directory entry")
    compression = struct.unpack_from("<i", entry, 18)[0]
    if compression not in COMPRESSIONS:
        raise FormatError(f"CZI subblock compression {compression} is one paw has not seen")
    cleared = copy[:DV_SPARE] + bytes(DV_SPARE_LENGTH) + copy[DV_SPARE + DV_SPARE_LENGTH:]
    new = (head[:16] + cleared).ljust(fixed, b"\0")
    removed = []
    if meta:
        raw = head[fixed:]
        simple = scrub_simple_subblock(raw)
        if simple is not None:   # the usual flat <Tags> list: no tree needed (a slide has 10^4 of them)
            new_xml, removed = simple
            new += new_xml.ljust(meta, b" ")
        else:
            root = _xml(raw, "CZI subblock metadata", SUBBLOCK_ROOT)
            new_root, removed = scrub_xml(root, SUBBLOCK_KEEP)
            new += serialize_padded(new_root, meta, indent=False)
    edits.write(segment.data, new)
    pixels = segment.data + fixed + meta
    if data:
        edits.plan.kept_data.append((pixels, data))
    edits.zero(pixels + data, segment.allocated - fixed - meta - data)
    return removed


_SIMPLE_SUBBLOCK = re.compile(
    rb"<METADATA>\s*(?:<Tags>((?:\s*<[A-Za-z]\w{0,63}>[^<&]{0,200}</[A-Za-z]\w{0,63}>)*)\s*</Tags>|<Tags\s*/>)?"
    rb"\s*(?:<DataSchema\s*/>)?\s*(?:<AttachmentSchema\s*/>)?\s*</METADATA>[\s\0]*")
_SIMPLE_TAG = re.compile(rb"<([A-Za-z]\w{0,63})>([^<&]*)</([A-Za-z]\w{0,63})>")


def scrub_simple_subblock(raw):
    """A subblock XML of ZEN's usual shape (a flat list of <Tags> with plain text) scrubbed
    without building a tree: (new XML, removed texts), or None for any other shape."""
    match = _SIMPLE_SUBBLOCK.fullmatch(raw)
    if match is None:
        return None
    kept, removed = [], []
    for name, text, closing in _SIMPLE_TAG.findall(match.group(1) or b""):
        value = text.decode("utf-8", "replace").strip()
        kind = SUBBLOCK_KEEP.get("Tags/" + name.decode())
        if name == closing and kind and kind.accepts(value):
            kept.append(b"<%s>%s</%s>" % (name, value.encode(), name))
        elif value:
            removed.append(value)
    return b"<METADATA><Tags>" + b"".join(kept) + b"</Tags></METADATA>", removed


def clean_entry(entry, guid):
    """A kept attachment entry with its spare bytes cleared, `guid` as its ContentGuid (the
    scanner's links the copy to the original file), and its content type and name written
    exactly (nothing after their terminating NUL)."""
    fields = struct.unpack(ATTACH_FIELDS, entry)
    return struct.pack(ATTACH_FIELDS, b"A1", bytes(10), fields[2], fields[3], guid,
                       ascii_field(fields[5]), ascii_field(fields[6])) + entry[struct.calcsize(ATTACH_FIELDS):]


def _kept_timestamps(fd, czi):
    """{segment offset: (typed payload, new ContentGuid, its entry copy)} of the one TimeStamps attachment that
    stays: the first whose directory entry and own entry copy both say TimeStamps and whose
    payload is a list of times (typed_timestamps). Any other is destroyed with the rest."""
    for _, entry, segment in czi.attachments:
        if (ascii_field(entry[40:48]), ascii_field(entry[48:128])) != TIMESTAMPS:
            continue
        head = _read(fd, segment.data, ATTACH_DATA)
        copy = head[16:16 + ATTACH_ENTRY]
        if (ascii_field(copy[40:48]), ascii_field(copy[48:128])) != TIMESTAMPS:
            continue
        (data_size,) = struct.unpack_from("<q", head, 0)
        payload = _read(fd, segment.data + ATTACH_DATA,
                        max(0, min(data_size, segment.allocated - ATTACH_DATA)))
        typed = typed_timestamps(payload, data_size)
        if typed is not None:
            return {segment.offset: (typed, uuid.uuid4().bytes_le, copy)}
    return {}


def _plan_attdir(czi, segment, timestamps, edits):
    """The attachment directory lists the kept TimeStamps only (once, with its new GUID)."""
    kept = [clean_entry(entry, timestamps[target.offset][1]) for _, entry, target in czi.attachments
            if target.offset in timestamps][:1]
    table = b"".join(kept)
    edits.write(segment.data, struct.pack("<i", len(kept)))
    edits.zero(segment.data + 4, ATTDIR_DATA - 4)
    edits.write(segment.data + ATTDIR_DATA, table)
    end = ATTDIR_DATA + len(table)
    edits.zero(segment.data + end, segment.allocated - end)
    edits.write(segment.offset + 24, struct.pack("<q", end))   # UsedSize


def _plan_kept_attachment(segment, payload, guid, entry, edits):
    """TimeStamps: its typed payload written over the old one, the entry copy with the new
    GUID; the spare fields and the slack after the payload zeroed."""
    edits.write(segment.data + 16, clean_entry(entry, guid))
    edits.zero(segment.data + 8, 8)
    edits.zero(segment.data + 16 + ATTACH_ENTRY, ATTACH_DATA - 16 - ATTACH_ENTRY)
    edits.write(segment.data + ATTACH_DATA, payload)
    edits.zero(segment.data + ATTACH_DATA + len(payload), segment.allocated - ATTACH_DATA - len(payload))


def timestamps_length(payload, data_size):
    """Bytes of a TimeStamps payload: int32 size, int32 count, count float64 (FormatError if not)."""
    if data_size < 8 or len(payload) < 8:
        raise FormatError("CZI TimeStamps attachment is too short")
    size, count = struct.unpack_from("<ii", payload, 0)
    if count < 0 or 8 + 8 * count > len(payload) or size not in (8 + 8 * count, 8 * count + 4):
        raise FormatError("CZI TimeStamps attachment is not a list of times")
    return 8 + 8 * count


# TimeStamps are seconds of each acquired plane (czifile read_time_stamps; Bio-Formats takes
# them as the planes' DeltaT). ZEN writes them relative to the experiment's start (0.54 s and
# 0.38 s in the fixtures). paw keeps them only as a non-decreasing list of finite times spanning
# at most TIMESTAMP_SPAN, and writes them relative to the first plane and rounded to the
# microsecond: an absolute date (Unix, .NET or OLE seconds) becomes 0, and text hidden in a
# double's low bits is rounded away. Any other payload destroys the attachment (no reader
# needs it to show the image).
TIMESTAMP_SPAN = 1e8      # seconds: about three years of time-lapse
TIMESTAMP_DIGITS = 6


def typed_timestamps(payload, data_size):
    """The TimeStamps payload paw writes instead of `payload`, or None when it is not a list
    of times (then the attachment is destroyed)."""
    try:
        length = timestamps_length(payload, data_size)
    except FormatError:
        return None
    size, count = struct.unpack_from("<ii", payload, 0)
    times = struct.unpack_from(f"<{count}d", payload, 8)
    if not all(math.isfinite(t) for t in times) or any(b < a for a, b in zip(times, times[1:])):
        return None
    first = times[0] if times else 0.0
    relative = [round(t - first, TIMESTAMP_DIGITS) for t in times]
    if relative and relative[-1] > TIMESTAMP_SPAN:
        return None
    return struct.pack(f"<ii{count}d", size, count, *relative)[:length]


class CziHandler(Handler):
    name = "czi"
    title = "Zeiss CZI"
    label_place = None   # the label is a nested CZI file; no drawn one is written
    plan_type = EditPlan

    def _plan(self, path, options, pseudonym, label):
        prepared = _plan(path)
        if label is not None:
            prepared.plan.actions.append("no drawn label: a CZI label is a nested CZI file")
        return prepared

    def check(self, path, plan, options):
        from . import cziaudit
        return cziaudit.audit(path, plan, options)

    def searched(self, path, plan):
        yield path, ranges.merge(plan.kept_data)
