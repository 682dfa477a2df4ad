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

Strings are UTF-16LE and are stored with their length, so every edit here keeps the length.
Each image stack is a `2001` volume (its second tag is N of `stackN/`); its `2005` properties
give the stack name (2030) and type (2074: 1 overview, 256 macro). An ETS file is a 64-byte
`SIS` header, a 228-byte `ETS` header (pixel type, compression, tile size), a tile table
(int32, N coordinates, int64 offset, int32 size, int32) and the tiles (JPEG, JPEG 2000, raw).

What paw does, in place:
- strings are kept only where STRINGS_KEEP lists the tag and its kind accepts the value (units,
  channel names, objective and device names, the product and its version); every other string
  is overwritten with NULs of the same length (document name, path, author, company, creator,
  GUID, stack names, slide specimen/tissue/staining/name, barcode, event texts ...);
- dates (DATE_TAGS, value types TIMESTAMP and DATE, and any 64-bit integer that reads as a date
  of 2000-2100), device serial numbers and slide/tray numbers (ZERO_TAGS) become 0, and so does
  a table of numbers whose bytes read as text (6 printable characters in a row);
- byte arrays (the 96x96 preview bitmap in tag 38, the annotation layer XML in 2038), vector
  data and unknown blobs are zeroed;
- the .vsi's TIFF page (a JPEG render with Artist, DateTime, Make, Model, Exif and an Olympus
  SIS block) is rewritten as a 1x1 black uncompressed image; the rest of its bytes are zeroed;
- label and overview/macro stacks: their stack names are emptied and their tiles zeroed;
- in every ETS file every byte outside the headers, the tile table and the tiles is zeroed.
Kept tiles are never read or written. Refused: a tree paw cannot walk, an unknown value type,
a field past the end of the file, a .vsi without its `_X_` folder, a stack folder or file the
.vsi does not explain, an ETS file that does not parse.
"""

import os
import re
import struct
from dataclasses import dataclass, field

import numpy as np

from .. import bundle, ranges
from ..errors import FormatError
from . import edits
from .allow import Pattern
from .base import Handler, Plan, Prepared
from .edits import EditPlan

# --- layout -----------------------------------------------------------------------------------

TREE_START = 8
VOLUME_HEADER, VOLUME_MAGIC = 24, 0x5349
FIELD_HEADER = 16
NEW_VOLUME, INLINE, ARRAY, EXTENDED, EXTRA_TAG = 0x80000000, 0x40000000, 0x20000000, 0x10000000, 0x08000000
VALUE_MASK, COUNT_MASK = 0xFFFFFF, 0x0FFFFFFF
VOLUME_TYPES = frozenset({0, 1, 2})     # extended: NEW_VOLUME_HEADER, PROPERTY_SET, NEW_MDIM_VOLUME
TIFF_IFD, VECTOR_DATA = 10, 11          # extended blobs
STRING_TYPES = frozenset({13, 8192, 8194})          # TCHAR, UNICODE_TCHAR (UTF-16LE here)
BYTE_TYPES = frozenset({1, 2})                      # CHAR, UCHAR: an array of them is a blob
INT64_TYPES = frozenset({7, 8})                     # LONG, ULONG
DATE_TYPES = frozenset({17, 18})                    # TIMESTAMP (int64), DATE (double)
NUMBER_TYPES = frozenset({3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 14, 17, 18, 4104, 8195, 8196, 8197,
                          8198, 8199, 8200, 8470} | set(range(256, 281)))
VALUE_TYPES = STRING_TYPES | BYTE_TYPES | NUMBER_TYPES
MAX_FIELDS = 1 << 20
MAX_DEPTH = 64

# Tags (Bio-Formats CellSensReader constants; 12 and 23 named from their values).
COLLECTION, IMAGE_STACK, STACK_PROPERTIES = 2000, 2001, 2005
STACK_NAME, STACK_TYPE = 2030, 2074
OVERVIEW_TYPES = frozenset({1, 256})    # OVERVIEW_IMAGE, MACRO_IMAGE
DATE_TAGS = frozenset({14, 23, 2015, 2100})     # document time, "document product", creation time, time start
ZERO_TAGS = frozenset({120129, 120637, 120638})  # DEVICE_ID (unit serial), slide no., tray no.
# A 64-bit number in this range reads as a Unix time of 2000-2100 (bioio-vsi's anonymizer looks
# for dates by value too): zeroed wherever it is, since a tag paw does not know may be a date.
UNIX_2000, UNIX_2100 = 946684800, 4102444800

_UNIT = Pattern(r"10\^-?\d{1,2}(?:m|s|%|Hz|K|g|V|A|rad|deg|px)?\^-?\d{1,2}")
_CHANNEL = Pattern(r"[A-Za-z0-9][A-Za-z0-9 ._+-]{0,23}")
_EQUIPMENT = Pattern(r"[A-Za-z0-9][A-Za-z0-9 ._/()+-]{0,47}")   # catalogue names of devices
STRINGS_KEEP = {
    268435456: _UNIT, 2020: _UNIT, 2063: _UNIT, 2064: _UNIT,   # units of the value beside them
    2021: _CHANNEL, 2419: _CHANNEL,                            # dimension and channel names
    120063: _EQUIPMENT, 120065: _EQUIPMENT,                    # objective name, description
    120116: _EQUIPMENT, 120132: _EQUIPMENT, 120133: _EQUIPMENT,  # device name, model, maker
    34: Pattern(r"(?:OLYMPUS |EVIDENT )?cellSens [A-Za-z]{1,20}"),  # product
    35: Pattern(r"\d{1,3}(?:\.\d{1,5}){0,3}"),                 # product version
}

# The TIFF page inside the .vsi (classic little-endian TIFF 6.0).
IMAGE_WIDTH, IMAGE_LENGTH, BITS_PER_SAMPLE, COMPRESSION, PHOTOMETRIC = 256, 257, 258, 259, 262
STRIP_OFFSETS, SAMPLES_PER_PIXEL, ROWS_PER_STRIP, STRIP_BYTE_COUNTS = 273, 277, 278, 279
SHORT, LONG = 3, 4
PAGE_TAGS = frozenset({IMAGE_WIDTH, IMAGE_LENGTH, BITS_PER_SAMPLE, COMPRESSION, PHOTOMETRIC,
                       STRIP_OFFSETS, SAMPLES_PER_PIXEL, ROWS_PER_STRIP, STRIP_BYTE_COUNTS})
PAGE_SIZE = 2 + 12 * len(PAGE_TAGS) + 4   # the 1x1 black page's directory (grey: no extra values)

# ETS (Bio-Formats CellSensReader.parseETSFile, bioio-vsi _ets.py).
ETS_MAGIC, ETS_SECOND_MAGIC = b"SIS\0", b"ETS\0"
ETS_HEADER = 64
ETS_SECOND = 228
ETS_COMPRESSION_AT = 20                 # in the second header: 0 raw, 2 JPEG, 3 JPEG 2000 ...
ETS_JPEG, ETS_J2K = 2, 3
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

    def child(self, tag):
        return next((c for c in self.children if c.tag == tag), None)


def read_tree(data):
    """The fields of the tag tree in `data` (the whole .vsi), and the (offset, length) spans it
    covers. FormatError on a loop, an unknown value type or anything past the end."""
    spans, count, blobs = [], [0], []

    def volume(at, path, depth):
        if depth > MAX_DEPTH or at + VOLUME_HEADER > len(data):
            raise FormatError("VSI tag tree is nested too deep or runs past the end")
        size, magic, _, first, flags = struct.unpack_from("<HHIqI", data, at)
        if size != VOLUME_HEADER or magic != VOLUME_MAGIC:
            raise FormatError(f"VSI tag tree: no volume header at byte {at}")
        spans.append((at, VOLUME_HEADER))
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
    return fields, spans


def _where(item):
    return "/".join(str(t) for t in item.path)


def walk(fields):
    for item in fields:
        yield item
        yield from walk(item.children)


def stacks(fields):
    """{stack number: (role, its 2030 name field or None)} of every 2001 volume in the collection;
    role is label, overview or level."""
    found = {}
    for collection in (f for f in fields if f.tag == COLLECTION and f.volume):
        for stack in (f for f in collection.children if f.tag == IMAGE_STACK and f.volume):
            if stack.second is None or stack.second in found:
                raise FormatError("VSI image stack without a number of its own")
            found[stack.second] = stack
    return found


def stack_role(stack, data):
    props = stack.child(STACK_PROPERTIES)
    name_field = props.child(STACK_NAME) if props else None
    type_field = props.child(STACK_TYPE) if props else None
    name = (string_value(name_field, data) or "") if name_field and name_field.kind in STRING_TYPES else ""
    kind = type_field.size if type_field and type_field.inline else None
    if type_field and not type_field.inline and type_field.size == 4:
        (kind,) = struct.unpack_from("<i", data, type_field.value)
    lowered = name.strip().lower()
    if lowered.startswith("label"):
        return "label"
    if kind in OVERVIEW_TYPES or lowered.startswith(("overview", "macro")):
        return "overview"
    return "level"


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
    structure: list    # (offset, length) of the headers and the tile table
    tiles: np.ndarray  # (N, 2) int64 offset, length


def read_ets(path):
    """Headers, tile table and tiles of an ETS file (FormatError if it does not parse)."""
    size = os.path.getsize(path)
    with open(path, "rb") as fh:
        head = fh.read(ETS_HEADER)
        if len(head) < ETS_HEADER or head[:4] != ETS_MAGIC:
            raise FormatError("ETS file does not start with its SIS header")
        header_size, _, dims, second_at, second_size, _, table_at, count = \
            struct.unpack_from("<iiiqiiqi", head, 4)
        if header_size != ETS_HEADER or not 0 < dims <= 16 or not 0 <= count <= MAX_TILES \
                or second_size < ETS_COMPRESSION_AT + 4 or second_at < ETS_HEADER \
                or second_at + second_size > size:
            raise FormatError("ETS header has impossible values")
        fh.seek(second_at)
        second = fh.read(second_size)
        if second[:4] != ETS_SECOND_MAGIC:
            raise FormatError("ETS file has no ETS header")
        (compression,) = struct.unpack_from("<i", second, ETS_COMPRESSION_AT)
        record = 4 * (dims + 5)
        if table_at < ETS_HEADER or table_at + record * count > size:
            raise FormatError("ETS tile table runs past the end of the file")
        fh.seek(table_at)
        table = np.frombuffer(fh.read(record * count), np.uint8).reshape(count, record)
    offsets = table[:, 4 + 4 * dims:12 + 4 * dims].copy().view("<i8").ravel()
    lengths = table[:, 12 + 4 * dims:16 + 4 * dims].copy().view("<i4").ravel().astype(np.int64)
    if count and (offsets.min() < 0 or lengths.min() < 0 or (offsets + lengths).max() > size):
        raise FormatError("an ETS tile lies outside the file")
    tiles = np.column_stack((offsets, lengths)).astype(np.int64)
    structure = [(0, ETS_HEADER), (second_at, second_size), (table_at, record * count)]
    return Ets(size, compression, structure, tiles)


def slide_files(path, numbers):
    """{stack number: [ETS paths]} under `_X_/`; FormatError on anything the .vsi does not
    explain (a file that is not frame_t*.ets, a stack folder of no stack)."""
    folder = bundle.vsi_folder(path)
    if folder is None:
        raise FormatError("Olympus VSI without its _X_ folder (the ETS pixel files)")
    found = {}
    for entry in sorted(os.scandir(folder), key=lambda e: e.name):
        match = STACK_FOLDER.fullmatch(entry.name)
        if not entry.is_dir(follow_symlinks=False) or not match or int(match.group(1)) not in numbers:
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


# --- the plan ---------------------------------------------------------------------------------

@dataclass
class VsiPlan(Plan):
    """In-place edits to the .vsi and every ETS file (paths relative to the .vsi's folder)."""
    files: dict = field(default_factory=dict)      # relative path -> EditPlan
    removed: list = field(default_factory=list)
    actions: list = field(default_factory=list)

    def apply(self, path, undo=None):
        """Edit every file; with `undo`, every file's original bytes are kept first (base.Plan)."""
        base = os.path.dirname(path)
        if undo is not None:
            edits.keep_originals(base, self.files, undo)
        for rel, plan in self.files.items():
            plan.apply(os.path.join(base, rel))

    def rollback(self, path, undo):
        edits.roll_back(os.path.dirname(path), self.files, undo)

    def to_json(self):
        return {"files": {k: v.to_json() for k, v in self.files.items()},
                "removed": self.removed, "actions": self.actions}

    @classmethod
    def from_json(cls, data):
        return cls({k: EditPlan.from_json(v) for k, v in data["files"].items()},
                   data["removed"], data["actions"])

    def summary(self):
        zeros = [z for plan in self.files.values() for z in plan.zeros]
        writes = sum(len(plan.writes) for plan in self.files.values())
        return (f"zero {sum(n for _, n in zeros)} bytes in {len(zeros)} places in {len(self.files)} "
                f"files; rewrite {writes} fields; kept tiles untouched")


def _read_all(path):
    with open(path, "rb") as fh:
        return fh.read()


def _prepare(path):
    data = _read_all(path)
    fields, spans = read_tree(data)
    found_stacks = stacks(fields)
    files = slide_files(path, set(found_stacks))
    vsi, removed, found, actions = EditPlan(layout=[]), [], {}, []
    roles = {n: stack_role(s, data) for n, s in found_stacks.items()}
    kept_strings = []
    for item in walk(fields):
        removed += _plan_field(item, data, vsi, kept_strings, found)
    for number, role in roles.items():
        if role != "level":
            found[role] = found.get(role, 0) + 1
            actions.append(f"{role} image destroyed")
        elif files.get(number):
            found["level"] = found.get("level", 0) + 1
    _plan_page(data, fields, vsi, found)
    # Bytes no field explains (between fields, after the tree): nothing a reader looks at.
    vsi.zeros += ranges.complement(ranges.merge(spans, [(0, TREE_START)]), len(data))
    plan = VsiPlan(removed=[], actions=["document and stack properties emptied (name, path, author, "
                                        "GUID, stack names, dates, device serials)"] + actions)
    base = os.path.dirname(path)
    plan.files[os.path.basename(path)] = vsi
    for number, paths in files.items():
        for ets_path in paths:
            ets = read_ets(ets_path)
            kept = ets.tiles if roles[number] == "level" else np.empty((0, 2), np.int64)
            structure = ranges.merge(ets.structure, kept)
            plan.files[os.path.relpath(ets_path, base)] = EditPlan(
                zeros=ranges.complement(structure, ets.size), layout=[],
                kept_data=ranges.as_pairs(ranges.merge(kept)))
    vocabulary = " ".join(kept_strings)
    plan.removed = sorted({v for v in removed if len(v.strip()) >= 4 and v not in vocabulary})
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
        if item.tag in ZERO_TAGS | DATE_TAGS and item.size:
            vsi.writes.append((item.at + 12, bytes(4)))
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
    if item.tag in ZERO_TAGS | DATE_TAGS or kind in DATE_TYPES or _date_like(item, data) or \
            reads_as_text(data[item.value:item.value + item.size]):
        vsi.zeros.append((item.value, item.size))
    return []


# Six ASCII characters in a row, as bytes or UTF-16: in a table of numbers that is text put
# there (Latin-1 is left out: the bytes of ordinary doubles such as 0.108333 are 0xBB runs).
_TEXT_IN_NUMBERS = re.compile(rb"[\x20-\x7e]{6}|(?:[\x20-\x7e]\x00){6}|(?:\x00[\x20-\x7e]){6}")


def reads_as_text(payload):
    return _TEXT_IN_NUMBERS.search(payload) is not None


def _date_like(item, data):
    if item.kind not in INT64_TYPES or item.size != 8:
        return False
    (value,) = struct.unpack_from("<q", data, item.value)
    return UNIX_2000 <= value <= UNIX_2100


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
