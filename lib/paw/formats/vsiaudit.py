"""The residual audit of an anonymized Olympus VSI slide: every text, number and byte left
outside kept tiles must be explained by what may stay (vsi.STRINGS_KEEP, vsi.NUMBERS_KEEP, the
1x1 preview page, the ETS layout), or the slide is refused, naming the field (never its value).

Written against those tables and the layout, not against the scrubber: the tag tree is walked
again here with its own reader (an explicit stack, not the scrubber's recursion), the ETS files
with its own reader, and the slide's image stack is chosen again by the rule the format module
documents (vsi.py: the one default-type stack that is strictly the largest), so a scrubber that
kept the wrong stack is caught. Checked:

- every string field is empty (NULs) or a value its tag's kind accepts;
- every number that is not zero is in a field NUMBERS_KEEP lists (by parent and tag), of a
  value type and within a range its kind accepts, and its bytes do not read as text; an inline
  value (the data size word) likewise, so a string's or an unknown field's inline slot is 0;
- the reserved word of every volume header is zero; no tag number spells four characters;
- byte arrays, vector data and the TIFF blob are zero, except the preview page's directory,
  which may only describe a 1x1 uncompressed image whose byte is zero;
- every byte of the .vsi outside the tree (and the 8-byte TIFF header) is zero;
- exactly one stack keeps tiles, the one the rule picks, and they are where they were; every
  other stack's tiles are zero; no stack keeps a name;
- in each ETS file only the headers, the tile table and the kept tiles may hold non-zero
  bytes; the headers hold no printable text and their unused words (vsi.ETS_*_SPARE) are zero;
  the two spare int32 of every tile record are zero; the kept stack's tile table is a pyramid of
  its image (every tile inside its level's grid, none twice);
- the kept stack's tiles are read whole for a sample (first, last and up to SAMPLE between;
  all with verify.full_scan): JPEG marker segments through the scan data to EOI, JPEG 2000
  main and tile-part headers to EOC, nothing but NUL padding after (jpeg.whole, j2k.whole);
- the slide's folder holds exactly the files the plan edited.
"""

import os
import re
import struct

import numpy as np

from .. import bundle, ranges
from ..errors import FormatError
from ..sparse import first_nonzero
from . import j2k, jpeg
from .allow import Residual, printable_runs, unexplained
from .vsi import (BYTE_TYPES, COLLECTION, DEFAULT_IMAGE, ELEMENTS, ETS_HEADER_SPARE, ETS_J2K,
                  ETS_JPEG, ETS_JPEG_LOSSLESS, ETS_RAW, ETS_SECOND_SPARE, EXTENDED, EXTRA_TAG,
                  IMAGE_STACK, INLINE, PAGE_TAGS, RWC_FRAME_SCALE, STACK_NAME, STACK_PROPERTIES,
                  STACK_TYPE, STRING_TYPES, STRINGS_KEEP, TIFF_IFD, TREE_START, VALUE_MASK,
                  VOLUME_HEADER, VOLUME_MAGIC, VOLUME_RESERVED, VOLUME_TYPES, number_rule)

SAMPLE = 8
_TAG_TEXT = re.compile(rb"[0-9A-Za-z !-/:-@_]{4}")                  # four characters as a tag number
_ASCII_RUN = re.compile(rb"[ -~]{6}|(?:[ -~]\0){6}|(?:\0[ -~]){6}")   # ASCII or UTF-16 text
COMPRESSION, IMAGE_WIDTH, IMAGE_LENGTH, STRIP_OFFSETS, STRIP_BYTE_COUNTS = 259, 256, 257, 273, 279
WALK = {ETS_JPEG: jpeg.whole, ETS_JPEG_LOSSLESS: jpeg.whole, ETS_J2K: j2k.whole, ETS_RAW: None}


class _Field:
    __slots__ = ("at", "type", "tag", "second", "value", "size", "where", "header", "parent", "children")

    def __init__(self, at, kind, tag, second, value, size, where, header, parent):
        self.at, self.type, self.tag, self.second, self.value = at, kind, tag, second, value
        self.size, self.where, self.header, self.parent = size, where, header, parent
        self.children = []

    @property
    def kind(self):
        return self.type & VALUE_MASK

    @property
    def is_volume(self):
        return bool(self.type & EXTENDED) and self.kind in VOLUME_TYPES


def audit(path, plan, options):
    with open(path, "rb") as fh:
        data = fh.read()
    problems, residuals, explained = [], [], [(0, TREE_START)]
    try:
        root, volumes = _tree(data)
    except (FormatError, struct.error) as exc:
        return [f"the anonymized VSI tag tree does not read back: {exc}"]
    every = list(_all(root))
    # A blob ends where the next structure starts (its data size may count more).
    starts = np.sort(np.array([f.at for f in every] + volumes + [len(data)], np.int64))
    for at in volumes:
        explained.append((at, VOLUME_RESERVED))   # the reserved word after it must be zero
    for item in every:
        explained.append((item.at, item.header))
        if item.is_volume:
            continue
        if item.type & INLINE:
            if item.size and not _number_fits(item, np.array([item.size])):
                problems.append(f"VSI field {item.where}: an inline value the allow-list does not keep")
            continue
        if item.type & EXTENDED:
            size = min(item.size, int(starts[np.searchsorted(starts, item.value)]) - item.value)
            if item.kind == TIFF_IFD:
                explained += _page(data, item.value, size, problems)
            continue   # the rest of a blob must be zero (checked below)
        payload = data[item.value:item.value + item.size]
        if item.kind in STRING_TYPES:
            text = payload.decode("utf-16-le", "replace").rstrip("\0") if not len(payload) % 2 else "?"
            if text:
                residuals.append(Residual(f"VSI field {item.where}", text))
                explained.append((item.value, item.size))
        elif item.kind in BYTE_TYPES and item.size > 8 or not payload.strip(b"\0"):
            pass   # a blob, or zeros: must be (and is) zero
        else:
            values = _values(item.kind, payload)
            if values is None or not _number_fits(item, values):
                problems.append(f"VSI field {item.where}: a number the allow-list does not keep")
            elif _ASCII_RUN.search(payload):
                problems.append(f"VSI field {item.where} holds numbers that read as text")
            explained.append((item.value, item.size))
    problems += unexplained(residuals, _explains)
    stray = _first_nonzero(data, ranges.merge(explained))
    if stray is not None:
        problems.append(f"VSI bytes at {stray} (a removed value, blob, reserved word or gap) are not cleared")
    if problems:
        return problems
    return _stacks(path, data, root, plan, options)


def _tree(data):
    """The root volume's fields (with their children) and the offsets of every volume header,
    walking volumes with an explicit stack."""
    root = _Field(TREE_START, 0, 0, None, TREE_START, 0, "", 0, None)
    pending, seen, volumes = [(TREE_START, root)], set(), []
    while pending:
        start, owner = pending.pop()
        size, magic, _, first, flags = struct.unpack_from("<HHIqI", data, start)
        if size != VOLUME_HEADER or magic != VOLUME_MAGIC:
            raise FormatError(f"no volume header at byte {start}")
        volumes.append(start)
        position = start + first
        for _ in range(flags & 0x0FFFFFFF):
            if position in seen or position + 16 > len(data):
                raise FormatError("a field pointer loops or leads past the end")
            seen.add(position)
            kind, tag, following, length = struct.unpack_from("<IiIi", data, position)
            second = struct.unpack_from("<i", data, position + 16)[0] if kind & EXTRA_TAG else None
            if _TAG_TEXT.fullmatch(data[position + 4:position + 8]) or (
                    second is not None and _TAG_TEXT.fullmatch(data[position + 16:position + 20])):
                raise FormatError(f"the field at byte {position} has a tag number that reads as text")
            value = position + 16 + (4 if kind & EXTRA_TAG else 0)
            item = _Field(position, kind, tag, second, value, length, f"{owner.where}/{tag}",
                          value - position, owner.tag if owner is not root else None)
            owner.children.append(item)
            if item.is_volume:
                pending.append((value, item))
            elif not kind & INLINE and (length < 0 or value + length > len(data)):
                raise FormatError(f"field {item.where} runs past the end")
            if not following:
                break
            position = start + following
    return root, volumes


def _all(item):
    for child in item.children:
        yield child
        yield from _all(child)


def _values(kind, payload):
    element = ELEMENTS.get(kind)
    if element is None:
        return None
    element = np.dtype(element)
    return np.frombuffer(payload[:len(payload) - len(payload) % element.itemsize], element)


def _number_fits(item, values):
    rule = number_rule(item.parent, item.tag)
    return rule is not None and item.kind in rule.types and rule.accepts(values)


def _explains(residual):
    tag = int(residual.where.rsplit("/", 1)[-1])
    kind = STRINGS_KEEP.get(tag)
    return kind is not None and kind.accepts(residual.text)


def _first_nonzero(data, spans):
    for offset, length in ranges.complement(spans, len(data)):
        chunk = data[offset:offset + length]
        if chunk.count(0) != len(chunk):
            return offset + len(chunk) - len(chunk.lstrip(b"\0"))
    return None


def _page(data, blob, size, problems):
    """The TIFF page the header points at, if inside this blob: only a 1x1 uncompressed image
    whose one byte is zero. Its directory is explained; the rest of the blob must be zero."""
    (page,) = struct.unpack_from("<I", data, 4)
    if data[:4] != b"II*\0" or not blob <= page < blob + size:
        return []
    (count,) = struct.unpack_from("<H", data, page)
    entries = {}
    for i in range(count):
        tag, kind, n, value = struct.unpack_from("<HHII", data, page + 2 + 12 * i)
        entries[tag] = value & 0xFFFF if kind == 3 else value
        if tag not in PAGE_TAGS or n != 1:
            problems.append(f"VSI preview page holds TIFF tag {tag}")
    if struct.unpack_from("<I", data, page + 2 + 12 * count)[0]:
        problems.append("VSI preview page links to another TIFF page")
    if (entries.get(COMPRESSION), entries.get(IMAGE_WIDTH), entries.get(IMAGE_LENGTH),
            entries.get(STRIP_BYTE_COUNTS)) != (1, 1, 1, 1):
        problems.append("VSI preview page is not the 1x1 uncompressed placeholder")
    return [(page, 2 + 12 * count + 4)]


# --- stacks and their ETS files -----------------------------------------------------------------

class _Ets:
    """This audit's own reading of an ETS file's headers and tile table."""

    def __init__(self, path):
        self.size = os.path.getsize(path)
        with open(path, "rb") as fh:
            head = fh.read(64)
            if len(head) < 64 or head[:4] != b"SIS\0":
                raise FormatError("no SIS header")
            dims, self.second_at, second_size = struct.unpack_from("<iqi", head, 12)
            self.table_at, count = struct.unpack_from("<qi", head, 32)
            fh.seek(self.second_at)
            second = fh.read(second_size)
            if second[:4] != b"ETS\0" or len(second) < 196 or not 3 <= dims <= 16:
                raise FormatError("no ETS header")
            self.head, self.second = head, second
            self.compression, = struct.unpack_from("<i", second, 20)
            self.tile = struct.unpack_from("<ii", second, 28)
            self.pyramid = struct.unpack_from("<i", second, 152)[0] != 0
            extents, = struct.unpack_from("<i", second, 184)
            if not 2 <= extents <= (len(second) - 188) // 4 or min(self.tile) <= 0:
                raise FormatError("no image extent")
            self.extent = struct.unpack_from(f"<{extents}i", second, 188)
            self.record = 4 * (dims + 5)
            fh.seek(self.table_at)
            raw = fh.read(self.record * count)
            if len(raw) != self.record * count:
                raise FormatError("tile table runs past the end")
        self.records = np.frombuffer(raw, np.uint8).reshape(count, self.record)
        self.coordinates = self.records[:, 4:4 + 4 * dims].copy().view("<i4").reshape(count, dims)
        offsets = self.records[:, 4 + 4 * dims:12 + 4 * dims].copy().view("<i8").ravel()
        lengths = self.records[:, 12 + 4 * dims:16 + 4 * dims].copy().view("<i4").ravel()
        self.tiles = np.column_stack((offsets, lengths.astype(np.int64))).astype(np.int64)
        self.structure = [(0, 64), (self.second_at, second_size), (self.table_at, self.record * count)]

    @property
    def area(self):
        return self.extent[0] * self.extent[1]

    def header_problem(self):
        if printable_runs(self.head) or printable_runs(self.second):
            return "the ETS header holds text"
        spare = [self.head[o:o + n] for o, n in ETS_HEADER_SPARE] + \
                [self.second[o:o + n] for o, n in ETS_SECOND_SPARE] + \
                [self.second[188 + 4 * len(self.extent):]]
        if any(part.strip(b"\0") for part in spare):
            return "an unused ETS header word is not zero"
        if len(self.records) and (self.records[:, :4].any() or self.records[:, -4:].any()):
            return "the spare words of its tile records are not zero"
        return None

    def grid_problem(self):
        """The tile table must be a pyramid of the image: tiles inside their level's grid."""
        c = self.coordinates.astype(np.int64)
        if not len(c):
            return None
        level = c[:, -1] if self.pyramid else np.zeros(len(c), np.int64)
        if (c < 0).any() or (not self.pyramid and c[:, -1].any()) or level.max() > 40:
            return "a tile coordinate outside the image"
        for axis, (extent, tile) in enumerate(zip(self.extent[:2], self.tile)):
            grid = -(-(-(-extent // np.left_shift(1, level))) // tile)
            if (c[:, axis] >= grid).any():
                return "a tile outside its level's grid"
        for i, extent in enumerate(self.extent[2:2 + c.shape[1] - 3]):
            if (c[:, 2 + i] >= max(extent, 1)).any():
                return "a tile coordinate outside the image"
        ordered = c[np.lexsort(c.T[::-1])]
        if len(c) > 1 and (ordered[1:] == ordered[:-1]).all(axis=1).any():
            return "two tiles at the same coordinates"
        return None


def _stack_facts(stack, data):
    """(type, pixel size) of a 2001 volume, or a reason it cannot be told."""
    props = [c for c in stack.children if c.tag == STACK_PROPERTIES and c.is_volume]
    if len(props) > 1:
        return None, None, "two property volumes"
    types = [c for c in props[0].children if c.tag == STACK_TYPE] if props else []
    anywhere = [f for f in _all(stack) if f.tag == STACK_TYPE]
    if len(anywhere) > 1 or anywhere != types:
        return None, None, "more than one stack type, or one outside its properties"
    kind = DEFAULT_IMAGE
    if types:
        item = types[0]
        values = np.array([item.size]) if item.type & INLINE else _values(item.kind, data[item.value:item.value + item.size])
        if values is None or len(values) != 1 or not np.isfinite(values[0]) or values[0] != int(values[0]):
            return None, None, "a stack type that is not one integer"
        kind = int(values[0])
    size = None
    scale = next((c for c in props[0].children if c.tag == RWC_FRAME_SCALE), None) if props else None
    if scale is not None and not scale.type & INLINE:
        values = _values(scale.kind, data[scale.value:scale.value + scale.size])
        if values is not None and len(values) and np.isfinite(values[0]) and values[0] > 0:
            size = float(values[0])
    return kind, size, None


def _stacks(path, data, root, plan, options):
    problems, base = [], os.path.dirname(path)
    folder = bundle.vsi_folder(path)
    if folder is None:
        return ["the VSI slide has lost its _X_ folder"]
    present = {os.path.relpath(os.path.join(top, name), base)
               for top, _, names in os.walk(folder) for name in names}
    if present != set(plan.files) - {os.path.basename(path)}:
        return ["the VSI folder holds files the plan did not edit"]
    found = {}
    for collection in (f for f in root.children if f.tag == COLLECTION and f.is_volume):
        for stack in (f for f in collection.children if f.tag == IMAGE_STACK and f.is_volume):
            found[stack.second] = stack
    if not found:
        return ["the VSI lists no image stack"]
    facts, etss = {}, {}
    for number, stack in found.items():
        kind, size, reason = _stack_facts(stack, data)
        if reason:
            return [f"VSI stack {number} has {reason}"]
        facts[number] = (kind, size)
        name = next((f for f in _all(stack) if f.tag == STACK_NAME and f.kind in STRING_TYPES
                     and not f.type & INLINE), None)
        if name is not None and data[name.value:name.value + name.size].strip(b"\0"):
            problems.append(f"VSI stack {number} still has a name")
        stack_folder = os.path.join(folder, f"stack{number}")
        for rel in sorted(r for r in present if os.path.dirname(os.path.join(base, r)) == stack_folder):
            try:
                etss.setdefault(number, []).append((rel, _Ets(os.path.join(base, rel))))
            except (FormatError, struct.error, ValueError) as exc:
                return [f"{rel}: the ETS file does not read back: {exc}"]
    image = _image(facts, {n: max((e.area for _, e in files), default=0) for n, files in etss.items()})
    if image is None:
        return problems + ["VSI: no single image stack is the slide's image by its type and size"]
    for number, files in etss.items():
        for rel, ets in files:
            problems += _ets(os.path.join(base, rel), rel, ets, number == image, plan.files[rel], options)
    return problems


def _image(facts, areas):
    """The stack the rule keeps: default type, strictly the largest, no smaller one finer."""
    candidates = sorted((areas[n], n) for n, (kind, _) in facts.items()
                        if kind == DEFAULT_IMAGE and areas.get(n))
    if not candidates or (len(candidates) > 1 and candidates[-2][0] == candidates[-1][0]):
        return None
    number = candidates[-1][1]
    own = facts[number][1]
    if own is not None and any(facts[n][1] is not None and facts[n][1] < own for _, n in candidates[:-1]):
        return None
    return number


def _ets(path, rel, ets, kept_stack, sub, options):
    problems = []
    reason = ets.header_problem()
    if reason:
        problems.append(f"{rel}: {reason}")
    tiles = ets.tiles[ets.tiles[:, 1] > 0] if len(ets.tiles) else ets.tiles
    kept = ranges.merge(tiles) if kept_stack else np.empty((0, 2), np.int64)
    if not np.array_equal(kept, ranges.merge(sub.kept_data)):
        problems.append(f"{rel}: kept tiles are not the slide's image stack's, or not where they were")
    stray = first_nonzero(path, ranges.complement(ranges.merge(ets.structure, ranges.from_spans(kept)), ets.size))
    if stray is not None:
        problems.append(f"{rel}: bytes at {stray} ({'a destroyed image' if not kept_stack else 'a gap'}) "
                        "are not cleared")
    if not kept_stack or problems:
        return problems
    reason = ets.grid_problem()
    if reason:
        return [f"{rel}: its tile table has {reason}"]
    if ets.compression not in WALK:
        return [f"{rel}: tiles in a codec paw cannot check for text"]
    walk = WALK[ets.compression]
    if walk is None or not len(tiles):
        return problems
    picks = range(len(tiles))
    if not options.full_scan and len(tiles) > SAMPLE + 2:
        step = (len(tiles) - 1) / (SAMPLE + 1)
        picks = sorted({round(i * step) for i in range(SAMPLE + 2)})
    with open(path, "rb") as fh:
        for i in picks:
            offset, length = (int(x) for x in tiles[i])
            fh.seek(offset)
            names = walk(fh.read(length))
            if names:
                problems.append(f"{rel}: tile {i}: {names[0]}")
                break
    return problems
