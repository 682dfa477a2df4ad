"""Olympus/Evident cellSens VSI (VS120, VS200 slide scanners; cellSens microscopes):
`X.vsi` plus the folder `_X_/` whose `stackN/frame_t*.ets` files hold the pixels.

The .vsi is a little-endian TIFF whose header points at one small TIFF page (a JPEG preview),
and from byte 8 on it is a tree of tagged fields (Bio-Formats CellSensReader.readTags, bioio-vsi
_tree.py; checked on a cellSens 3.1 file, where every byte of the .vsi belongs to the tree and
the TIFF page lies inside one of its fields):

  volume  24 bytes: uint16 header size (24), uint16 magic 0x5349, uint32 version, int64 offset
          of the first field (from the volume's start), uint32 flags (low 28 bits: field
          count), 4 reserved
  field   int32 field type, int32 tag, uint32 offset of the next field (from the volume's
          start, 0 = last), int32 data size; int32 second tag if the type has EXTRA_TAG; then
          the value. Type bits: NEW_VOLUME, INLINE (the value is the data size field itself),
          ARRAY, EXTENDED (value type 0-2: one nested volume; 10: a TIFF page; 11: vector
          data), EXTRA_TAG; the low 24 bits are the value type (VALUE_TYPES).

A tag means something only in its place: 2005 is a stack's properties volume under a 2001
stack and a gamma value under a channel's 2008 volume. So what stays is keyed by the field's
parent tag and its own tag (NUMBERS_KEEP), or by tag where the meaning is the same everywhere.

Strings are UTF-16LE and are stored with their length, so every edit here keeps the length.
Each image stack is a `2001` volume (its second tag is N of `stackN/`); its `2005` properties
give the stack name (2030) and type (2074: 0 default image, 1 overview, 2 sample mask, 4 focus
image, 8-64 EFI maps, 256 macro; CellSensReader). An ETS file is a 64-byte `SIS` header, a
228-byte `ETS` header (pixel type, compression, tile size, pyramid flag, image extent), a tile
table (int32, N coordinates, int64 offset, int32 size, int32) and the tiles (JPEG, JPEG 2000,
raw).

Which stacks stay (fail closed: a label stack must never be kept because paw did not
recognise its name). Names are never consulted: "Label", "Slide Label", "Etikett", "Barcode"
or a name in another encoding all escape a list. A slide keeps exactly one stack, the one paw
can positively identify as the slide's image by the structure the format defines:
- its type (2074, read as an integer in whatever numeric encoding and width it is stored, or
  absent) is DEFAULT_IMAGE; a stack whose properties contradict themselves (two 2005 volumes,
  two 2074 fields, a 2074 elsewhere in the stack, a type that is not an integer) refuses the
  slide;
- it is the largest of those by level-0 pixel area (ETS image extent), strictly: two default
  stacks of the same largest size refuse the slide (paw cannot tell which is the image), and so
  does a smaller default stack with a finer pixel size (2019) than the largest one;
- its ETS tile tables are a pyramid of that image: every tile's coordinates lie inside the
  grid of its level (each level half the one before, rounded either way), no coordinate twice.
Every other stack (overview, macro, label, masks, EFI maps, other regions) is destroyed: its
tiles are zeroed (the stack stays listed: Bio-Formats matches ETS files to stacks by order)
and its name emptied like every string. A slide where no stack qualifies is refused.

What paw does, in place:
- strings are kept only where STRINGS_KEEP lists the tag and its kind accepts the value (units;
  channel and dimension names from the optics vocabulary; objective catalogue names; device
  manufacturers from a list; the product and its version); every other string is overwritten
  with NULs of the same length (document name, path, author, company, creator, GUID, stack
  names, device names and models, filter names, slide specimen/tissue/staining/name, barcode,
  event texts ...);
- numbers are kept only where NUMBERS_KEEP lists the field (what a reader needs: geometry,
  pixel size, dimensions, stack type, the external-file flag, the optics Bio-Formats and
  bioio-vsi read) and each of its values lies in the kind's range; every other number is zeroed
  (dates, device serials, slide and tray numbers, display state, ids, numbers of unknown tags:
  a number can be a date or an accession as well as a Unix time can). An inline value (held in
  the data size word) of a field that is not kept, a string's included, is zeroed too;
- the reserved word of every volume header is zeroed; byte arrays (the 96x96 preview bitmap in
  tag 38, the annotation layer XML in 2038), vector data and unknown blobs are zeroed;
- the .vsi's TIFF page (a JPEG render with Artist, DateTime, Make, Model, Exif and an Olympus
  SIS block) is rewritten as a 1x1 black uncompressed image; the rest of its bytes are zeroed;
- in every ETS file every byte outside the headers, the tile table and the kept tiles is zeroed,
  and so are the headers' reserved and unused words (ETS_SPARE) and the two spare int32 of every
  tile record (rewritten when the plan is applied: the table is not copied into the journal).
Kept tiles are never read or written. Refused: a tree paw cannot walk, an unknown value type,
a field past the end of the file, a .vsi without its `_X_` folder, a stack folder or file the
.vsi does not explain, an ETS file that does not parse or holds tiles in a codec whose headers
paw cannot check (ETS_WALKED), stacks as above.
"""

import os
import re
import struct
from dataclasses import dataclass, field

import numpy as np

from .. import bundle, ranges
from ..errors import FormatError
from . import edits, optics
from .allow import Kind, Pattern
from .base import Handler, Plan, Prepared
from .edits import EditPlan

# --- layout -----------------------------------------------------------------------------------

TREE_START = 8
VOLUME_HEADER, VOLUME_MAGIC = 24, 0x5349
VOLUME_RESERVED = 20                    # the volume header's last 4 bytes: zeroed
FIELD_HEADER = 16
NEW_VOLUME, INLINE, ARRAY, EXTENDED, EXTRA_TAG = 0x80000000, 0x40000000, 0x20000000, 0x10000000, 0x08000000
VALUE_MASK, COUNT_MASK = 0xFFFFFF, 0x0FFFFFFF
VOLUME_TYPES = frozenset({0, 1, 2})     # extended: NEW_VOLUME_HEADER, PROPERTY_SET, NEW_MDIM_VOLUME
TIFF_IFD, VECTOR_DATA = 10, 11          # extended blobs
STRING_TYPES = frozenset({13, 8192, 8194})          # TCHAR, UNICODE_TCHAR (UTF-16LE here)
BYTE_TYPES = frozenset({1, 2})                      # CHAR, UCHAR: an array of them is a blob
DATE_TYPES = frozenset({17, 18})                    # TIMESTAMP (int64), DATE (double)
# Numeric value types and the element each value is made of (CellSensReader's value types):
# scalars, tuples and arrays of int32 or double, RGB/BGR bytes.
ELEMENTS = {
    1: "<i1", 2: "<u1", 3: "<i2", 4: "<u2", 5: "<i4", 6: "<u4", 7: "<i8", 8: "<u8", 9: "<f4",
    10: "<f8", 11: "<f8", 12: "<u1", 14: "<u4", 17: "<i8", 18: "<f8", 4104: "<i4",
    **{t: "<i4" for t in (256, 257, 258, 259, 267, 271, 272, 273, 274, 275, 276, 277, 278, 8195,
                          8196, 8197, 8198, 8199, 8200, 8470)},
    **{t: "<f8" for t in (260, 261, 262, 263, 264, 265, 266, 268, 279, 280)},
    269: "<u1", 270: "<u1",
}
NUMBER_TYPES = frozenset(ELEMENTS)
VALUE_TYPES = STRING_TYPES | NUMBER_TYPES
MAX_FIELDS = 1 << 20
MAX_DEPTH = 64

# Tags (Bio-Formats CellSensReader constants; 12 and 23 named from their values).
COLLECTION, IMAGE_STACK, STACK_PROPERTIES = 2000, 2001, 2005
STACK_NAME, STACK_TYPE, RWC_FRAME_SCALE = 2030, 2074, 2019
DEFAULT_IMAGE = 0                       # STACK_TYPE of the slide's image (absent means the same)
INTEGER_TYPES = frozenset({1, 2, 3, 4, 5, 6, 7, 8, 12, 14, 4104})


# --- what may stay ----------------------------------------------------------------------------

_UNIT = Pattern(r"10\^-?\d{1,2}(?:m|s|%|Hz|K|g|V|A|rad|deg|px)?\^-?\d{1,2}")
STRINGS_KEEP = {
    268435456: _UNIT, 2020: _UNIT, 2011: _UNIT, 2063: _UNIT, 2064: _UNIT,   # units of values
    2021: optics.CHANNEL_NAME, 2419: optics.CHANNEL_NAME,      # dimension and channel names
    120063: optics.OBJECTIVE_NAME, 120065: optics.OBJECTIVE_NAME,   # objective name, description
    120133: optics.MANUFACTURER,                               # device manufacturer
    34: Pattern(r"(?:OLYMPUS |EVIDENT )?cellSens [A-Za-z]{1,20}"),  # product
    35: Pattern(r"\d{1,3}(?:\.\d{1,5}){0,3}"),                 # product version
}


class Numbers(Kind):
    """Every value of a numeric field (a scalar, a tuple, an array) of one of `types`, finite,
    within [low, high]. `accepts` takes the values as a numpy array."""
    label = "numbers of the field's kind"
    __slots__ = ("types", "low", "high")

    def __init__(self, types, low, high):
        self.types, self.low, self.high = frozenset(types), low, high

    def accepts(self, values):
        values = np.asarray(values, dtype=np.float64)
        return bool(np.isfinite(values).all() and (values >= self.low).all() and (values <= self.high).all())

    def fits(self, value_type, values):
        return value_type in self.types and self.accepts(values)

    def __repr__(self):
        return f"Numbers({sorted(self.types)}, {self.low}, {self.high})"


_INTS = (1, 2, 3, 4, 5, 6, 7, 8, 12, 14, 4104)
_INT_TUPLES = (256, 257, 258, 259, 267, 274, 275, 276, 277, 8195, 8196, 8197, 8198, 8199, 8200, 8470)
_DOUBLES = (9, 10, 260, 261, 262, 263, 264, 265, 266, 268, 279, 280)
_VERSION = Numbers(_INTS, 0, 1 << 31)
_COUNT = Numbers(_INTS + _INT_TUPLES, 0, 1 << 31)
_FLAG = Numbers(_INTS, 0, 1)
_CODE = Numbers(_INTS, 0, 1_000_000)            # enumerations and tag ids
_GEOMETRY = Numbers(_INT_TUPLES + _INTS, -(1 << 31), 1 << 31)   # pixels, tile indices
_REAL = Numbers(_DOUBLES, -1e9, 1e9)            # positions, origins, display limits (µm or grey)
_SCALE = Numbers(_DOUBLES, 0, 1e6)              # µm per pixel
_WAVELENGTH = Numbers(_INTS + _DOUBLES, 0, 10000)
_EXPOSURE = Numbers(_INTS + _DOUBLES, 0, 1e12)  # µs
_APERTURE = Numbers(_DOUBLES, 0, 2)
_MAGNIFICATION = Numbers(_DOUBLES + _INTS, 0, 1000)
_REFRACTIVE = Numbers(_DOUBLES, 0, 5)
_BITS = Numbers(_INTS, 0, 64)
_GAIN = Numbers(_DOUBLES + _INTS, -1e6, 1e6)
ANY = None
DOCUMENT = (2, 2109)                            # document properties (Bio-Formats: 2109)
# Property sets of a dimension (Z start/increment/value, time increment/value, lambda), of the
# channel wavelength (2417) and of the objective working distance (120062): their VALUE
# (268435458), with its DIM_INDEX (268435457) and the set's inline state (268435459).
VALUE_SETS = (2012, 2013, 2014, 2016, 2017, 2039, 2040, 2041, 2417, 120062)
NUMBERS_KEEP = {
    **{(parent, tag): _VERSION for parent in DOCUMENT for tag in (18, 19, 20, 21, 22)},  # creator version
    (COLLECTION, 2035): _VERSION,                  # format version (bioio-vsi reads it)
    (IMAGE_STACK, 2003): _COUNT,                   # dimension sizes
    (IMAGE_STACK, 2031): _CODE,                    # frame type
    (IMAGE_STACK, 2027): _COUNT,                   # sample id list
    (IMAGE_STACK, 2030): _COUNT,                   # sample flags list
    (IMAGE_STACK, 2034): Numbers(_INTS, 0, 65535),  # default background colour
    (STACK_PROPERTIES, 2003): _REAL,               # display limits
    (STACK_PROPERTIES, 2006): _REAL,               # frame origin
    (STACK_PROPERTIES, 2007): _REAL,               # frame scale
    (STACK_PROPERTIES, 2018): _REAL,               # origin on the stage, µm
    (STACK_PROPERTIES, RWC_FRAME_SCALE): _SCALE,   # pixel size, µm
    (STACK_PROPERTIES, 2031): _CODE,               # channel dimension
    (STACK_PROPERTIES, STACK_TYPE): Numbers(_INTS + _DOUBLES, 0, 1_000_000),   # stack type (any width)
    (2018, 2053): _GEOMETRY,                       # image boundary
    (2018, 2410): _GEOMETRY,                       # tile origin
    (2018, 20004): _CODE,                          # tile system
    (2018, 20005): _FLAG,                          # has external (ETS) file
    (2008, 2023): _CODE,                           # dimension meaning (Z, T, lambda, C)
    (2008, 2025): _CODE, (2008, 2026): _CODE, (2008, 2027): _CODE,  # start/increment/value ids
    **{(parent, 268435458): _REAL for parent in VALUE_SETS},
    **{(parent, 268435457): _CODE for parent in VALUE_SETS},
    **{(parent, 268435459): Numbers(_INTS, 0, 1 << 31) for parent in VALUE_SETS},
    (ANY, 120130): _CODE,                          # device subtype (Bio-Formats: which is the camera)
    (120114, 100002): _EXPOSURE,                   # exposure time
    **{(120114, tag): _GAIN for tag in range(100003, 100013)},  # camera gains and offsets
    (120114, 100015): _BITS, (120114, 100016): _BITS,          # binning
    (120114, 100049): _BITS,                       # bit depth
    (120114, 120060): _MAGNIFICATION,              # objective magnification
    (120114, 120061): _APERTURE,                   # numerical aperture
    (120114, 120062): Numbers(_DOUBLES, 0, 1e6),   # working distance
    (120114, 120064): _CODE,                       # objective type
    (120114, 120079): _REFRACTIVE,                 # refractive index
    (120114, 122000): _WAVELENGTH,                 # laser line, nm
}


def number_rule(parent, tag):
    return NUMBERS_KEEP.get((parent, tag)) or NUMBERS_KEEP.get((ANY, tag))


# The TIFF page inside the .vsi (classic little-endian TIFF 6.0).
IMAGE_WIDTH, IMAGE_LENGTH, BITS_PER_SAMPLE, COMPRESSION, PHOTOMETRIC = 256, 257, 258, 259, 262
STRIP_OFFSETS, SAMPLES_PER_PIXEL, ROWS_PER_STRIP, STRIP_BYTE_COUNTS = 273, 277, 278, 279
SHORT, LONG = 3, 4
PAGE_TAGS = frozenset({IMAGE_WIDTH, IMAGE_LENGTH, BITS_PER_SAMPLE, COMPRESSION, PHOTOMETRIC,
                       STRIP_OFFSETS, SAMPLES_PER_PIXEL, ROWS_PER_STRIP, STRIP_BYTE_COUNTS})
PAGE_SIZE = 2 + 12 * len(PAGE_TAGS) + 4   # the 1x1 black page's directory (grey: no extra values)

# ETS (Bio-Formats CellSensReader.parseETSFile, bioio-vsi _ets.py, slideio etsfile.cpp).
ETS_MAGIC, ETS_SECOND_MAGIC = b"SIS\0", b"ETS\0"
ETS_HEADER = 64
ETS_SECOND = 228
ETS_COMPRESSION_AT, ETS_TILE_AT, ETS_PYRAMID_AT = 20, 28, 152   # in the second header
ETS_EXTENTS_AT = 184                    # extent count, then width, height, the other dimensions
ETS_RAW, ETS_JPEG, ETS_J2K, ETS_JPEG_LOSSLESS = 0, 2, 3, 5
# Tiles paw can check for text: raw pixels (nothing to check), JPEG and lossless JPEG streams,
# JPEG 2000 codestreams. PNG (8) and BMP (9) tiles, or an unknown code, refuse the slide.
ETS_WALKED = frozenset({ETS_RAW, ETS_JPEG, ETS_J2K, ETS_JPEG_LOSSLESS})
# Words of the headers no reader uses (read and skipped by Bio-Formats, bioio-vsi and slideio):
# zeroed. (offset, length) in the SIS header, and in the ETS header relative to its start: the
# 17 pixel-info hints, the unnamed words before and after the image origin, and the extent
# slots after the extent count says they end (zeroed by ets_spare below).
ETS_HEADER_SPARE = ((28, 4), (44, 4), (56, 8))
ETS_SECOND_SPARE = ((40, 68), (156, 16), (180, 4))
ETS_RECORD_SPARE = "first and last int32"   # of every tile record (u0, u1 in bioio-vsi)
ETS_NAME = re.compile(r"frame_t(?:_\d{1,6})?\.ets")
STACK_FOLDER = re.compile(r"stack(\d{1,9})")
MAX_TILES = 50_000_000


def detect(path):
    """A TIFF whose bytes 8.. are a cellSens tag-tree volume header."""
    if not os.path.isfile(path):
        return False
    with open(path, "rb") as fh:
        head = fh.read(TREE_START + 4)
    return head[:4] == b"II*\0" and head[TREE_START:] == struct.pack("<HH", VOLUME_HEADER, VOLUME_MAGIC)


# --- the tag tree -----------------------------------------------------------------------------

@dataclass
class Field:
    at: int            # the field header's offset
    type: int          # the whole field type word
    tag: int
    second: int        # the extra tag (stack number of a 2001 volume), or None
    value: int         # where the value starts (the nested volume, for volumes)
    size: int          # the data size field (the value itself when INLINE)
    path: tuple        # tags from the root down to this field
    children: list = field(default_factory=list)

    @property
    def kind(self):
        return self.type & VALUE_MASK

    @property
    def inline(self):
        return bool(self.type & INLINE)

    @property
    def volume(self):
        return bool(self.type & EXTENDED) and self.kind in VOLUME_TYPES

    @property
    def parent(self):
        return self.path[-2] if len(self.path) > 1 else None

    def child(self, tag):
        return next((c for c in self.children if c.tag == tag), None)


def read_tree(data):
    """The fields of the tag tree in `data` (the whole .vsi), the (offset, length) spans it
    covers, and the offsets of its volume headers. FormatError on a loop, an unknown value type
    or anything past the end."""
    spans, count, blobs, volumes = [], [0], [], []

    def volume(at, path, depth):
        if depth > MAX_DEPTH or at + VOLUME_HEADER > len(data):
            raise FormatError("VSI tag tree is nested too deep or runs past the end")
        size, magic, _, first, flags = struct.unpack_from("<HHIqI", data, at)
        if size != VOLUME_HEADER or magic != VOLUME_MAGIC:
            raise FormatError(f"VSI tag tree: no volume header at byte {at}")
        spans.append((at, VOLUME_HEADER))
        volumes.append(at)
        fields, position, seen = [], at + first, set()
        for _ in range(flags & COUNT_MASK):
            if position in seen or not at < position <= len(data) - FIELD_HEADER:
                raise FormatError("VSI tag tree: a field pointer loops or leads past the end")
            seen.add(position)
            count[0] += 1
            if count[0] > MAX_FIELDS:
                raise FormatError("VSI tag tree has an implausible number of fields")
            kind, tag, following, size = struct.unpack_from("<IiIi", data, position)
            value = position + FIELD_HEADER
            second = None
            if kind & EXTRA_TAG:
                if value + 4 > len(data):
                    raise FormatError("VSI tag tree: a field runs past the end of the file")
                (second,) = struct.unpack_from("<i", data, value)
                value += 4
            if tag_reads_as_text(data[position + 4:position + 8]) or \
                    (second is not None and tag_reads_as_text(data[value - 4:value])):
                raise FormatError(f"VSI field at byte {position} has a tag number that reads as text")
            spans.append((position, value - position))
            item = Field(position, kind, tag, second, value, size, path + (tag,))
            value_type = kind & VALUE_MASK
            if kind & EXTENDED and value_type in VOLUME_TYPES:
                item.children = volume(value, item.path, depth + 1)
            elif kind & EXTENDED and value_type not in (TIFF_IFD, VECTOR_DATA):
                raise FormatError(f"VSI field {_where(item)} has an extended type paw does not know")
            elif kind & EXTENDED:
                if size < 0 or value + size > len(data):
                    raise FormatError(f"VSI field {_where(item)} runs past the end of the file")
                blobs.append(item)
            elif not kind & EXTENDED and value_type not in VALUE_TYPES:
                raise FormatError(f"VSI field {_where(item)} has a value type paw does not know")
            elif not kind & INLINE:
                if size < 0 or value + size > len(data):
                    raise FormatError(f"VSI field {_where(item)} runs past the end of the file")
                spans.append((value, size))
            fields.append(item)
            if following == 0:
                break
            position = at + following
        return fields

    fields = volume(TREE_START, (), 0)
    # A blob's data size may count more than its bytes (the TIFF page of a cellSens 3.1 file
    # says 48 more, running into the next field): it ends where the next structure starts.
    starts = np.sort(np.array([o for o, _ in spans] or [len(data)], np.int64))
    for item in blobs:
        following = starts[np.searchsorted(starts, item.value, side="left"):]
        end = min(item.value + item.size, int(following[0]) if len(following) else len(data))
        item.size = end - item.value
        spans.append((item.value, item.size))
    return fields, spans, volumes


def _where(item):
    return "/".join(str(t) for t in item.path)


def walk(fields):
    for item in fields:
        yield item
        yield from walk(item.children)


def stacks(fields):
    """{stack number: its 2001 volume field} of every image stack in the collection."""
    found = {}
    for collection in (f for f in fields if f.tag == COLLECTION and f.volume):
        for stack in (f for f in collection.children if f.tag == IMAGE_STACK and f.volume):
            if stack.second is None or stack.second in found:
                raise FormatError("VSI image stack without a number of its own")
            found[stack.second] = stack
    return found


def numbers(item, data):
    """The values of a numeric field as a numpy array (an inline field: its data size word)."""
    if item.inline:
        return np.array([item.size], np.int64)
    element = np.dtype(ELEMENTS[item.kind])
    raw = data[item.value:item.value + item.size]
    return np.frombuffer(raw[:len(raw) - len(raw) % element.itemsize], element)


def stack_type(stack, data):
    """The STACK_TYPE of a 2001 volume: DEFAULT_IMAGE when absent. FormatError when the stack's
    properties contradict themselves or the type is not one integer, in any width."""
    props = [c for c in stack.children if c.tag == STACK_PROPERTIES and c.volume]
    if len(props) > 1:
        raise FormatError(f"VSI stack {stack.second} has two property volumes")
    types = [c for c in props[0].children if c.tag == STACK_TYPE] if props else []
    elsewhere = [f for f in walk(stack.children) if f.tag == STACK_TYPE and f not in types]
    if len(types) > 1 or elsewhere:
        raise FormatError(f"VSI stack {stack.second} has more than one stack type")
    if not types:
        return DEFAULT_IMAGE
    item = types[0]
    if item.volume or item.type & EXTENDED or item.kind not in NUMBER_TYPES:
        raise FormatError(f"VSI stack {stack.second} has a stack type that is not a number")
    values = numbers(item, data)
    if len(values) != 1 or not np.isfinite(values[0]) or values[0] != int(values[0]):
        raise FormatError(f"VSI stack {stack.second} has a stack type that is not one integer")
    return int(values[0])


def pixel_size(stack, data):
    """The stack's pixel size (2019, µm per pixel, x), or None."""
    props = stack.child(STACK_PROPERTIES)
    scale = props.child(RWC_FRAME_SCALE) if props else None
    if scale is None or scale.inline or scale.kind not in NUMBER_TYPES:
        return None
    values = numbers(scale, data)
    return float(values[0]) if len(values) and np.isfinite(values[0]) and values[0] > 0 else None


def choose_image(types, areas, sizes):
    """The stack number of the slide's image: of the stacks whose type is DEFAULT_IMAGE and
    that have pixels, the largest by area, strictly, and no smaller one finer (`sizes`: µm per
    pixel or None). FormatError when there is none or paw cannot tell."""
    candidates = sorted((areas[n], n) for n, t in types.items() if t == DEFAULT_IMAGE and areas.get(n))
    if not candidates:
        raise FormatError("VSI has no image stack paw can identify as the slide's image")
    area, number = candidates[-1]
    if len(candidates) > 1 and candidates[-2][0] == area:
        raise FormatError("VSI has two image stacks of the same size: paw cannot tell which is the slide")
    own = sizes.get(number)
    if own is not None and any(sizes.get(n) is not None and sizes[n] < own for _, n in candidates[:-1]):
        raise FormatError("VSI has a smaller image stack of a finer pixel size than the largest")
    return number


def string_value(item, data):
    raw = data[item.value:item.value + item.size]
    if len(raw) % 2:
        return None
    try:
        return raw.decode("utf-16-le").rstrip("\0")
    except UnicodeDecodeError:
        return None


# --- ETS --------------------------------------------------------------------------------------

@dataclass
class Ets:
    size: int
    compression: int
    structure: list      # (offset, length) of the headers and the tile table
    tiles: np.ndarray    # (N, 2) int64 offset, length
    coordinates: np.ndarray   # (N, dims) int32
    table: tuple         # (offset, record length, count) of the tile table
    second_at: int       # where the ETS header is
    tile_size: tuple     # (width, height)
    pyramid: bool
    extent: tuple        # the image extent (width, height, the other dimensions)

    @property
    def area(self):
        return self.extent[0] * self.extent[1] if len(self.extent) >= 2 else 0


def read_ets(path):
    """Headers, tile table and tiles of an ETS file (FormatError if it does not parse)."""
    size = os.path.getsize(path)
    with open(path, "rb") as fh:
        head = fh.read(ETS_HEADER)
        if len(head) < ETS_HEADER or head[:4] != ETS_MAGIC:
            raise FormatError("ETS file does not start with its SIS header")
        header_size, _, dims, second_at, second_size, _, table_at, count = \
            struct.unpack_from("<iiiqiiqi", head, 4)
        if header_size != ETS_HEADER or not 3 <= dims <= 16 or not 0 <= count <= MAX_TILES \
                or second_size < ETS_EXTENTS_AT + 12 or second_at < ETS_HEADER \
                or second_at + second_size > size:
            raise FormatError("ETS header has impossible values")
        fh.seek(second_at)
        second = fh.read(second_size)
        if second[:4] != ETS_SECOND_MAGIC:
            raise FormatError("ETS file has no ETS header")
        compression, = struct.unpack_from("<i", second, ETS_COMPRESSION_AT)
        tile_size = struct.unpack_from("<ii", second, ETS_TILE_AT)
        pyramid, = struct.unpack_from("<i", second, ETS_PYRAMID_AT)
        extents, = struct.unpack_from("<i", second, ETS_EXTENTS_AT)
        if not 2 <= extents <= (second_size - ETS_EXTENTS_AT - 4) // 4 or min(tile_size) <= 0:
            raise FormatError("ETS header has no image extent or tile size")
        extent = struct.unpack_from(f"<{extents}i", second, ETS_EXTENTS_AT + 4)
        record = 4 * (dims + 5)
        if table_at < ETS_HEADER or table_at + record * count > size:
            raise FormatError("ETS tile table runs past the end of the file")
        fh.seek(table_at)
        table = np.frombuffer(fh.read(record * count), np.uint8).reshape(count, record)
    coordinates = table[:, 4:4 + 4 * dims].copy().view("<i4").reshape(count, dims)
    offsets = table[:, 4 + 4 * dims:12 + 4 * dims].copy().view("<i8").ravel()
    lengths = table[:, 12 + 4 * dims:16 + 4 * dims].copy().view("<i4").ravel().astype(np.int64)
    if count and (offsets.min() < 0 or lengths.min() < 0 or (offsets + lengths).max() > size):
        raise FormatError("an ETS tile lies outside the file")
    tiles = np.column_stack((offsets, lengths)).astype(np.int64)
    structure = [(0, ETS_HEADER), (second_at, second_size), (table_at, record * count)]
    return Ets(size, compression, structure, tiles, coordinates, (table_at, record, count),
               second_at, tile_size, bool(pyramid), extent)


def grid_problem(ets):
    """Why the tile table is not a pyramid of the image its header describes, or None: every
    tile's x and y inside its level's grid (level k is the extent halved k times, rounded up or
    down), the other coordinates inside the extent, level 0 only without a pyramid, no
    coordinate twice."""
    c = ets.coordinates
    if not len(c):
        return None
    dims = c.shape[1]
    levels = c[:, -1].astype(np.int64) if ets.pyramid else np.zeros(len(c), np.int64)
    if c.min() < 0 or (not ets.pyramid and (c[:, -1] != 0).any()) or levels.max() > 40:
        return "a tile coordinate outside the image"
    width, height = ets.extent[:2]
    # Level k spans at most ceil(extent / 2^k) pixels (the rounded-up halving is the larger).
    span_x = -(-width // (1 << levels))
    span_y = -(-height // (1 << levels))
    tw, th = ets.tile_size
    if (c[:, 0] >= -(-span_x // tw)).any() or (c[:, 1] >= -(-span_y // th)).any():
        return "a tile outside its level's grid"
    slots = ets.extent[2:2 + max(0, dims - 3)]
    for i, extent in enumerate(slots):
        if (c[:, 2 + i] >= max(extent, 1)).any():
            return "a tile coordinate outside the image"
    shape = tuple(int(m) + 1 for m in c.max(axis=0))
    if np.prod(shape, dtype=np.float64) < 2 ** 62:   # one integer per coordinate row, sorted
        keys = np.sort(np.ravel_multi_index(tuple(c.T.astype(np.int64)), shape))
        if (keys[1:] == keys[:-1]).any():
            return "two tiles at the same coordinates"
    elif len(np.unique(c, axis=0)) != len(c):
        return "two tiles at the same coordinates"
    return None


def slide_files(path, numbers_):
    """{stack number: [ETS paths]} under `_X_/`; FormatError on anything the .vsi does not
    explain (a file that is not frame_t*.ets, a stack folder of no stack)."""
    folder = bundle.vsi_folder(path)
    if folder is None:
        raise FormatError("Olympus VSI without its _X_ folder (the ETS pixel files)")
    found = {}
    for entry in sorted(os.scandir(folder), key=lambda e: e.name):
        match = STACK_FOLDER.fullmatch(entry.name)
        if not entry.is_dir(follow_symlinks=False) or not match or int(match.group(1)) not in numbers_:
            raise FormatError(f"VSI folder holds {'a file' if not entry.is_dir() else 'a folder'} "
                              "that is not the stack of an image in the .vsi")
        files = []
        for inner in sorted(os.scandir(entry.path), key=lambda e: e.name):
            if not inner.is_file(follow_symlinks=False) or not ETS_NAME.fullmatch(inner.name):
                raise FormatError("VSI stack folder holds something other than frame_t*.ets files")
            files.append(inner.path)
        found[int(match.group(1))] = files
    if not any(found.values()):
        raise FormatError("VSI folder holds no ETS pixel file")
    return found


def ets_spare(ets):
    """(offset, length) of the header words no reader uses: ETS_HEADER_SPARE, ETS_SECOND_SPARE
    and the extent slots after the extent count."""
    spare = list(ETS_HEADER_SPARE) + [(ets.second_at + o, n) for o, n in ETS_SECOND_SPARE]
    second_size = ets.structure[1][1]
    used = ETS_EXTENTS_AT + 4 + 4 * len(ets.extent)
    if second_size > used:
        spare.append((ets.second_at + used, second_size - used))
    return spare


def zero_record_spares(table, dims):
    """A tile table (bytes) with the first and last int32 of every record zeroed."""
    records = np.frombuffer(table, np.uint8).reshape(-1, 4 * (dims + 5)).copy()
    records[:, :4] = 0
    records[:, -4:] = 0
    return records.tobytes()


# --- the plan ---------------------------------------------------------------------------------

@dataclass
class VsiPlan(Plan):
    """In-place edits to the .vsi and every ETS file (paths relative to the .vsi's folder).
    `tables` names each ETS file's tile table (offset, record length, count): its records'
    spare words are zeroed when the plan is applied (read from the file then, so the journal
    holds three numbers instead of the table)."""
    files: dict = field(default_factory=dict)      # relative path -> EditPlan
    removed: list = field(default_factory=list)
    actions: list = field(default_factory=list)
    tables: dict = field(default_factory=dict)     # relative path -> [offset, record, count]

    def _with_tables(self, base):
        """The per-file plans with each tile table rewritten (spare words zeroed) as a write."""
        plans = {}
        for rel, plan in self.files.items():
            table = self.tables.get(rel)
            if table:
                offset, record, count = table
                with open(os.path.join(base, rel), "rb") as fh:
                    fh.seek(offset)
                    raw = fh.read(record * count)
                plan = EditPlan(plan.writes + [(offset, zero_record_spares(raw, record // 4 - 5))],
                                plan.zeros, layout=[], kept_data=plan.kept_data)
            plans[rel] = plan
        return plans

    def apply(self, path, undo=None):
        """Edit every file; with `undo`, every file's original bytes are kept first (base.Plan).
        Zeroing a table's spare words is idempotent: a replay computes the same table."""
        base = os.path.dirname(path)
        plans = self._with_tables(base)
        if undo is not None:
            edits.keep_originals(base, plans, undo)
        for rel, plan in plans.items():
            plan.apply(os.path.join(base, rel))

    def rollback(self, path, undo):
        edits.roll_back(os.path.dirname(path), self.files, undo)

    def to_json(self):
        return {"files": {k: v.to_json() for k, v in self.files.items()},
                "removed": self.removed, "actions": self.actions, "tables": self.tables}

    @classmethod
    def from_json(cls, data):
        return cls({k: EditPlan.from_json(v) for k, v in data["files"].items()},
                   data["removed"], data["actions"], {k: list(v) for k, v in data.get("tables", {}).items()})

    def summary(self):
        zeros = [z for plan in self.files.values() for z in plan.zeros]
        writes = sum(len(plan.writes) for plan in self.files.values())
        return (f"zero {sum(n for _, n in zeros)} bytes in {len(zeros)} places in {len(self.files)} "
                f"files; rewrite {writes} fields and {len(self.tables)} tile tables; kept tiles untouched")


def _read_all(path):
    with open(path, "rb") as fh:
        return fh.read()


def _prepare(path):
    data = _read_all(path)
    fields, spans, volumes = read_tree(data)
    found_stacks = stacks(fields)
    files = slide_files(path, set(found_stacks))
    base = os.path.dirname(path)
    etss = {number: [read_ets(p) for p in paths] for number, paths in files.items()}
    types = {n: stack_type(s, data) for n, s in found_stacks.items()}
    areas = {n: max((e.area for e in etss.get(n, ())), default=0) for n in found_stacks}
    sizes = {n: pixel_size(s, data) for n, s in found_stacks.items()}
    image = choose_image(types, areas, sizes)
    for ets in etss[image]:
        if ets.compression not in ETS_WALKED:
            raise FormatError(f"VSI stack {image} holds tiles in a codec paw cannot check for text")
        problem = grid_problem(ets)
        if problem:
            raise FormatError(f"VSI stack {image}: its ETS tile table has {problem}")

    vsi, removed, found = EditPlan(layout=[]), [], {}
    kept_strings = []
    for item in walk(fields):
        removed += _plan_field(item, data, vsi, kept_strings, found)
    for at in volumes:
        vsi.zeros.append((at + VOLUME_RESERVED, VOLUME_HEADER - VOLUME_RESERVED))
    _plan_page(data, fields, vsi, found)
    # Bytes no field explains (between fields, after the tree): nothing a reader looks at.
    vsi.zeros += ranges.complement(ranges.merge(spans, [(0, TREE_START)]), len(data))

    actions = ["document and stack properties emptied (name, path, author, GUID, stack names, "
               "device names, dates, serials, numbers no reader needs)"]
    found["level"] = 1
    for number in sorted(found_stacks):
        if number == image:
            continue
        role = {1: "overview", 256: "macro"}.get(types[number], "other image")
        found[role] = found.get(role, 0) + 1
    for role in ("overview", "macro", "other image"):
        if found.get(role):
            actions.append(f"{role} stack destroyed (x{found[role]})" if found[role] > 1
                           else f"{role} stack destroyed")
    plan = VsiPlan(removed=[], actions=actions)
    plan.files[os.path.basename(path)] = vsi
    for number, paths in files.items():
        for ets_path, ets in zip(paths, etss[number]):
            kept = ets.tiles if number == image else np.empty((0, 2), np.int64)
            structure = ranges.merge(ets.structure, kept)
            rel = os.path.relpath(ets_path, base)
            plan.files[rel] = EditPlan(
                zeros=ranges.complement(structure, ets.size) + ets_spare(ets), layout=[],
                kept_data=ranges.as_pairs(ranges.merge(kept)))
            if ets.table[2]:
                plan.tables[rel] = list(ets.table)
    vocabulary = " ".join(kept_strings).lower()   # verification's search ignores case
    plan.removed = sorted({v for v in removed if len(v.strip()) >= 4 and v.lower() not in vocabulary})
    if found.get("thumbnail"):
        plan.actions.append("TIFF preview page replaced by a 1x1 black image")
    if found.get("preview"):
        plan.actions.append("preview bitmaps and annotation layers zeroed")
    return Prepared(plan, found)


def _plan_field(item, data, vsi, kept_strings, found):
    """Edits for one field; the strings it removes."""
    kind = item.kind
    if item.volume:
        return []
    if item.type & EXTENDED:
        if kind == VECTOR_DATA and item.size:
            vsi.zeros.append((item.value, item.size))
        return []   # TIFF pages: _plan_page
    if item.inline:
        rule = number_rule(item.parent, item.tag) if kind in NUMBER_TYPES else None
        if item.size and not (rule and rule.fits(kind, numbers(item, data))):
            vsi.writes.append((item.at + 12, bytes(4)))   # the data size word is the value
        return []
    if kind in STRING_TYPES:
        text = string_value(item, data)
        rule = STRINGS_KEEP.get(item.tag)
        if text is not None and rule is not None and rule.accepts(text):
            kept_strings.append(text)
            return []
        if item.size:
            vsi.zeros.append((item.value, item.size))
        return [text] if text else []
    if kind in BYTE_TYPES and item.size > 8:
        vsi.zeros.append((item.value, item.size))
        found["preview"] = found.get("preview", 0) + 1
        return []
    rule = number_rule(item.parent, item.tag)
    if item.size and not (rule and rule.fits(kind, numbers(item, data)) and not reads_as_text(
            data[item.value:item.value + item.size])):
        vsi.zeros.append((item.value, item.size))
    return []


# Six ASCII characters in a row, as bytes or UTF-16: in a table of numbers that is text put
# there (Latin-1 is left out: the bytes of ordinary doubles such as 0.108333 are 0xBB runs).
# A tag number is four bytes: all four letters or digits is text (a real tag below 2^24 has a
# zero byte; 268435456 and 1073741825 have three).
_TEXT_IN_NUMBERS = re.compile(rb"[\x20-\x7e]{6}|(?:[\x20-\x7e]\x00){6}|(?:\x00[\x20-\x7e]){6}")
_TEXT_AS_TAG = re.compile(rb"[0-9A-Za-z !-/:-@_]{4}")


def reads_as_text(payload):
    return _TEXT_IN_NUMBERS.search(payload) is not None


def tag_reads_as_text(raw):
    return _TEXT_AS_TAG.fullmatch(raw) is not None


def _plan_page(data, fields, vsi, found):
    """The .vsi's TIFF page becomes a 1x1 black grey image; every other byte of the blobs that
    hold it (and of any other TIFF blob) is zeroed."""
    blobs = [(f.value, f.size) for f in walk(fields) if f.type & EXTENDED and f.kind == TIFF_IFD]
    (page,) = struct.unpack_from("<I", data, 4)
    home = next(((o, n) for o, n in blobs if o <= page and page + PAGE_SIZE + 1 <= o + n), None)
    if page and home is None:
        raise FormatError("the .vsi's TIFF page lies outside its tag tree or has no room")
    directory = black_page(page + PAGE_SIZE) if page else b""
    if page:
        found["thumbnail"] = 1
        vsi.writes.append((page, directory))   # the pixel after it stays zero: black
    spared = ranges.merge([(page, len(directory))])   # writes come first when a plan is applied
    for offset, length in blobs:
        vsi.zeros += [(max(o, offset), o + n - max(o, offset))
                      for o, n in ranges.complement(spared, offset + length) if o + n > offset]


def black_page(pixel):
    """A TIFF directory for a 1x1 uncompressed grey image whose one byte is at `pixel`."""
    entries = [(IMAGE_WIDTH, LONG, 1), (IMAGE_LENGTH, LONG, 1), (BITS_PER_SAMPLE, SHORT, 8),
               (COMPRESSION, SHORT, 1), (PHOTOMETRIC, SHORT, 1), (STRIP_OFFSETS, LONG, pixel),
               (SAMPLES_PER_PIXEL, SHORT, 1), (ROWS_PER_STRIP, LONG, 1), (STRIP_BYTE_COUNTS, LONG, 1)]
    return struct.pack("<H", len(entries)) + b"".join(
        struct.pack("<HHII" if kind == LONG else "<HHIH2x", tag, kind, 1, value)
        for tag, kind, value in entries) + struct.pack("<I", 0)


class VsiHandler(Handler):
    name = "vsi"
    title = "Olympus VSI"
    label_place = None   # the label is an image stack of its own; no drawn one is written
    plan_type = VsiPlan

    def _plan(self, path, options, pseudonym, label):
        prepared = _prepare(path)
        if label is not None:
            prepared.plan.actions.append("no drawn label: a VSI label is an image stack of its own")
        return prepared

    def check(self, path, plan, options):
        from . import vsiaudit
        return vsiaudit.audit(path, plan, options)

    def searched(self, path, plan):
        base = os.path.dirname(path)
        for rel, sub in plan.files.items():
            yield os.path.join(base, rel), ranges.merge(sub.kept_data)
