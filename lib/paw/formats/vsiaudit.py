"""The residual audit of an anonymized Olympus VSI slide: every text and every byte left outside
kept tiles must be explained by what may stay (vsi.STRINGS_KEEP, the zeroed tags and types, the
1x1 preview page), or the slide is refused, naming the field (never its value).

Written against that table and the layout, not against the scrubber: the tag tree is walked
again here with its own reader (an explicit stack, not the scrubber's recursion), and

- every string field is empty (NULs) or a value its tag's kind accepts;
- date tags, date types, serial and slide/tray numbers read 0, no 64-bit number reads as a
  date of 2000-2100 and no table of numbers reads as text;
- byte arrays, vector data and the TIFF blob are zero, except the preview page's directory,
  which may only describe a 1x1 uncompressed image whose byte is zero;
- every byte of the .vsi outside the tree (and the 8-byte TIFF header) is zero;
- label and overview stacks have no name left and zero tiles;
- in each ETS file only the headers, the tile table and the kept tiles may hold non-zero bytes,
  the headers hold no printable text, and the kept tiles are where they were;
- the tile headers of kept stacks are sampled (first, last and up to SAMPLE between; all with
  verify.full_scan) for JPEG COM/APPn and JPEG 2000 COM segments;
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
from .vsi import (BYTE_TYPES, DATE_TAGS, DATE_TYPES, ETS_J2K, ETS_JPEG, EXTENDED, EXTRA_TAG,
                  IMAGE_STACK, INLINE, INT64_TYPES, PAGE_TAGS, STACK_NAME, STACK_PROPERTIES,
                  STRING_TYPES, STRINGS_KEEP, TIFF_IFD, TREE_START, UNIX_2000, UNIX_2100,
                  VALUE_MASK, VOLUME_HEADER, VOLUME_MAGIC, VOLUME_TYPES, ZERO_TAGS,
                  read_ets, stack_role, stacks, read_tree)

SAMPLE = 8
_ASCII_RUN = re.compile(rb"[ -~]{6}|(?:[ -~]\0){6}|(?:\0[ -~]){6}")   # ASCII or UTF-16 text
TILE_HEAD = 64 << 10
COMPRESSION, IMAGE_WIDTH, IMAGE_LENGTH, STRIP_OFFSETS, STRIP_BYTE_COUNTS = 259, 256, 257, 273, 279


def audit(path, plan, options):
    with open(path, "rb") as fh:
        data = fh.read()
    problems, residuals, explained = [], [], [(0, TREE_START)]
    try:
        fields = _fields(data)
    except (FormatError, struct.error) as exc:
        return [f"the anonymized VSI tag tree does not read back: {exc}"]
    # A blob ends where the next structure starts (its data size may count more).
    starts = np.sort(np.array([f[0] for f in fields] + [len(data)], np.int64))
    for at, kind, tag, value, size, where, header in fields:
        explained.append((at, header))
        if header == VOLUME_HEADER and not kind and not tag:
            continue
        value_type = kind & VALUE_MASK
        if kind & EXTENDED and value_type in VOLUME_TYPES:
            continue
        if kind & INLINE:
            if tag in ZERO_TAGS | DATE_TAGS and size:
                problems.append(f"VSI field {where} (a date or serial number) is not zero")
            continue
        if kind & EXTENDED:
            size = min(size, int(starts[np.searchsorted(starts, value)]) - value)
            if value_type == TIFF_IFD:
                explained += _page(data, value, size, problems)
            continue   # the rest of a blob must be zero (checked below)
        payload = data[value:value + size]
        if value_type in STRING_TYPES:
            text = payload.decode("utf-16-le", "replace").rstrip("\0") if not len(payload) % 2 else "?"
            if text:
                residuals.append(Residual(f"VSI field {where}", text))
                explained.append((value, size))
        elif value_type in BYTE_TYPES and size > 8:
            pass
        elif tag in ZERO_TAGS | DATE_TAGS or value_type in DATE_TYPES:
            pass
        else:
            if value_type in INT64_TYPES and size == 8 and \
                    UNIX_2000 <= struct.unpack_from("<q", payload)[0] <= UNIX_2100:
                problems.append(f"VSI field {where} holds a number that reads as a date")
            if _ASCII_RUN.search(payload):
                problems.append(f"VSI field {where} holds numbers that read as text")
            explained.append((value, size))
    problems += unexplained(residuals, _explains)
    stray = _first_nonzero(data, ranges.merge(explained))
    if stray is not None:
        problems.append(f"VSI bytes at {stray} (a removed value, blob or gap) are not cleared")
    if problems:
        return problems
    try:
        tree, _ = read_tree(data)   # the stacks' roles, by the format's table (vsi.stack_role)
    except FormatError as exc:
        return [f"the anonymized VSI tag tree does not read back: {exc}"]
    return _stacks(path, data, tree, plan, options)


def _fields(data):
    """(field offset, type, tag, value offset, data size, path text, header length) of every
    field, walking volumes with an explicit stack."""
    found, pending, seen = [], [(TREE_START, "")], set()
    while pending:
        start, prefix = pending.pop()
        size, magic, _, first, flags = struct.unpack_from("<HHIqI", data, start)
        if size != VOLUME_HEADER or magic != VOLUME_MAGIC:
            raise FormatError(f"no volume header at byte {start}")
        found.append((start, 0, 0, start, 0, prefix or "/", VOLUME_HEADER))
        position = start + first
        for _ in range(flags & 0x0FFFFFFF):
            if position in seen or position + 16 > len(data):
                raise FormatError("a field pointer loops or leads past the end")
            seen.add(position)
            kind, tag, following, length = struct.unpack_from("<IiIi", data, position)
            value = position + 16 + (4 if kind & EXTRA_TAG else 0)
            where = f"{prefix}/{tag}"
            found.append((position, kind, tag, value, length, where, value - position))
            if kind & EXTENDED and kind & VALUE_MASK in VOLUME_TYPES:
                pending.append((value, where))
            elif not kind & INLINE and (length < 0 or value + length > len(data)):
                raise FormatError(f"field {where} runs past the end")
            if not following:
                break
            position = start + following
    return found


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


def _stacks(path, data, tree, plan, options):
    problems, base = [], os.path.dirname(path)
    found = stacks(tree)
    folder = bundle.vsi_folder(path)
    if folder is None:
        return ["the VSI slide has lost its _X_ folder"]
    present = {os.path.relpath(os.path.join(root, name), base)
               for root, _, names in os.walk(folder) for name in names}
    if present != set(plan.files) - {os.path.basename(path)}:
        problems.append("the VSI folder holds files the plan did not edit")
    for number, stack in found.items():
        # Label stacks are known by their name, which is gone now: the plan says which stacks
        # it destroyed (no kept tiles); a kept stack must still not look like a label/overview.
        props = stack.child(STACK_PROPERTIES)
        name = props.child(STACK_NAME) if props else None
        if name is not None and name.kind in STRING_TYPES and data[name.value:name.value + name.size].strip(b"\0"):
            problems.append(f"VSI stack {number} still has a name")
        stack_folder = os.path.join(folder, f"stack{number}")
        for rel in sorted(r for r in present if os.path.dirname(os.path.join(base, r)) == stack_folder):
            role = "level" if plan.files[rel].kept_data else "destroyed"
            if role == "level" and stack_role(stack, data) != "level":
                problems.append(f"VSI stack {number} is an overview or label but its tiles were kept")
            problems += _ets(os.path.join(base, rel), rel, role, plan.files[rel], options)
    if not any(stack.tag == IMAGE_STACK for stack in found.values()):
        problems.append("the VSI lists no image stack")
    return problems


def _ets(path, rel, role, sub, options):
    try:
        ets = read_ets(path)
    except FormatError as exc:
        return [f"{rel}: {exc}"]
    problems = []
    with open(path, "rb") as fh:
        for offset, length in ets.structure[:2]:
            fh.seek(offset)
            if printable_runs(fh.read(length)):
                problems.append(f"{rel}: the ETS header holds text")
    tiles = ets.tiles[ets.tiles[:, 1] > 0] if len(ets.tiles) else ets.tiles
    kept = ranges.merge(tiles) if role == "level" else np.empty((0, 2), np.int64)
    if not np.array_equal(kept, ranges.merge(sub.kept_data)):
        problems.append(f"{rel}: kept tiles are not where they were")
    stray = first_nonzero(path, ranges.complement(ranges.merge(ets.structure, ranges.from_spans(kept)), ets.size))
    if stray is not None:
        problems.append(f"{rel}: bytes at {stray} ({'a destroyed image' if role != 'level' else 'a gap'}) "
                        "are not cleared")
    if role == "level" and ets.compression in (ETS_JPEG, ETS_J2K) and len(tiles):
        picks = range(len(tiles))
        if not options.full_scan and len(tiles) > SAMPLE + 2:
            step = (len(tiles) - 1) / (SAMPLE + 1)
            picks = sorted({round(i * step) for i in range(SAMPLE + 2)})
        reader = jpeg if ets.compression == ETS_JPEG else j2k
        with open(path, "rb") as fh:
            for i in picks:
                offset, length = (int(x) for x in tiles[i])
                fh.seek(offset)
                try:
                    names = reader.unexplained(fh.read(min(length, TILE_HEAD)))
                except FormatError as exc:
                    problems.append(f"{rel}: tile {i}: {exc}")
                    continue
                if names:
                    problems.append(f"{rel}: tile {i} has a {names[0]} segment")
    return problems
