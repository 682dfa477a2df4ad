"""A bounded, read-only TIFF parser: the header, the main directory chain, and value access.

Classic TIFF, BigTIFF (either byte order) and Hamamatsu's NDPI layout (classic TIFF with 8-byte
header and next-directory pointers and the high 32 bits of each entry's offset in an array after
the directory). It never decodes pixels; tile and strip tables are read only when asked for,
as numpy arrays.

The parser is deliberately strict and bounded, because slides arrive from outside: IFD loops,
offsets past EOF and absurd counts raise `FormatError` with a one-line reason.

Directories a SubIFDs tag lists (Adobe TIFF Technical Note 1; OME-TIFF keeps its pyramid levels
there) are read only when a vendor asks (`sub_directories`): every other vendor drops the tag,
and whatever it pointed to is zeroed with the other unreferenced bytes.
"""

import struct
from dataclasses import dataclass

from .. import ranges
from ..errors import FormatError
from .tifftags import (BIG_MAGIC, CLASSIC_MAGIC, INTEGER_ARRAYS, RATIONALS, STRIP_LAYOUT,
                       TILE_LAYOUT, TYPE_FORMAT, Tag, Type, tag_name)

MAX_DIRECTORIES = 1024       # no scanner writes more; a longer chain is hostile
MAX_ENTRIES = 1024           # per directory
MAX_VALUE_BYTES = 256 << 20  # one tag value (tile offset arrays of a 20 GB slide are < 2 MiB)
MAX_SUB_DIRECTORIES = 64     # per directory: pyramid levels (a 1 TB slide has ~ 20)


@dataclass
class Entry:
    tag: int
    type: int
    count: int
    raw: bytes          # the whole directory entry as stored
    value_offset: int   # where the value bytes are (inside the entry when inline)
    size: int           # value size in bytes
    inline: bool
    stored_offset: int = 0  # the offset as written in the entry (NDPI: low 32 bits only)
    high: bytes = b""       # NDPI: this entry's 4 bytes in the high-bytes array


@dataclass
class Directory:
    index: int                  # main chain: its position; a sub-directory: a number after them
    offset: int                 # where the entry count starts
    entries: dict               # tag -> Entry, in file order
    table_size: int             # count field + entries + next pointer
    next_offset: int
    name: str = ""              # how reasons name it: "directory 2", "directory 0 SubIFD 1"
    parent: int = None          # a sub-directory: the index of the directory listing it


class Tiff:
    """A parsed TIFF: header facts, the main directory chain, and value access."""

    def __init__(self, fh):
        self.fh = fh
        fh.seek(0, 2)
        self.size = fh.tell()
        head = self._read(0, min(16, self.size))
        if len(head) < 8 or head[:2] not in (b"II", b"MM"):
            raise FormatError("not a TIFF file")
        self.bo = "<" if head[:2] == b"II" else ">"
        magic = struct.unpack(self.bo + "H", head[2:4])[0]
        self.ndpi = False
        self.first_directory = None
        if magic == CLASSIC_MAGIC:
            self.bigtiff = False
            self.first_pointer_at = 4
            self._layout()
            first = struct.unpack(self.bo + "I", head[4:8])[0]
            if len(head) >= 12:
                first = self._detect_ndpi(struct.unpack(self.bo + "Q", head[4:12])[0], first)
        elif magic == BIG_MAGIC and len(head) >= 16:
            self.bigtiff = True
            self.first_pointer_at, first = 8, struct.unpack(self.bo + "Q", head[8:16])[0]
            self._layout()
        else:
            raise FormatError(f"not a TIFF file (magic number {magic})")
        self.directories = self._walk_chain(first)
        self._sub_directories = {}

    def _layout(self):
        big = self.bigtiff
        # NDPI is classic TIFF whose header and next-directory pointers are 8 bytes, with the
        # high 32 bits of each entry's offset in an array after the directory.
        self.header_size = 16 if big else 12 if self.ndpi else 8
        self.pointer_code = "Q" if big or self.ndpi else "I"
        self.pointer_size = 8 if big or self.ndpi else 4
        self.slot = 8 if big else 4
        self.count_code = "Q" if big else "H"
        self.entry_size = 20 if big else 12

    def _detect_ndpi(self, first64, first32):
        """OpenSlide's rule: NDPI if the 64-bit first offset leads to a directory with the NDPI
        format flag."""
        if not 0 < first64 < self.size:
            return first32
        self.ndpi = True
        self._layout()
        try:
            directory = self.read_directory(first64, 0)
        except FormatError:
            directory = None
        if directory is not None and Tag.NDPI_FORMAT_FLAG in directory.entries:
            return first64
        self.ndpi = False
        self._layout()
        return first32

    # --- reading -------------------------------------------------------------------------------

    def _read(self, offset, length):
        if offset < 0 or length < 0 or offset + length > self.size:
            raise FormatError(f"a structure at offset {offset} runs past the end of the file")
        self.fh.seek(offset)
        return self.fh.read(length)

    def _walk_chain(self, offset):
        directories, seen = [], set()
        while offset:
            if offset in seen:
                raise FormatError("the directory chain loops back on itself")
            if len(directories) >= MAX_DIRECTORIES:
                raise FormatError(f"more than {MAX_DIRECTORIES} directories")
            seen.add(offset)
            directory = self.read_directory(offset, len(directories))
            directories.append(directory)
            offset = directory.next_offset
        if not directories:
            raise FormatError("the TIFF has no image directory")
        return directories

    def read_directory(self, offset, index):
        csize = 8 if self.bigtiff else 2
        count = struct.unpack(self.bo + self.count_code, self._read(offset, csize))[0]
        if not 0 < count <= MAX_ENTRIES:
            raise FormatError(f"directory {index} claims {count} entries")
        table = self._read(offset + csize, count * self.entry_size + self.pointer_size)
        high = self._read(offset + csize + len(table), 4 * count) if self.ndpi else bytes(4 * count)
        entries = {}
        for i in range(count):
            raw = table[i * self.entry_size:(i + 1) * self.entry_size]
            entry = self._entry(raw, offset + csize + i * self.entry_size, index, offset)
            entry.high = high[4 * i:4 * i + 4]
            if entry.tag in entries:
                raise FormatError(f"directory {index} has {tag_name(entry.tag)} twice")
            entries[entry.tag] = entry
        next_offset = struct.unpack(self.bo + self.pointer_code, table[-self.pointer_size:])[0]
        if next_offset >= self.size:
            raise FormatError(f"directory {index} points past the end of the file")
        size = csize + len(table) + len(high) if self.ndpi else csize + len(table)
        directory = Directory(index, offset, entries, size, next_offset, f"directory {index}")
        if self.first_directory is None and self.ndpi and Tag.NDPI_FORMAT_FLAG in entries:
            self.first_directory = directory
        return directory

    def sub_directories(self, directory):
        """The directories `directory`'s SubIFDs tag lists, in its order (empty without one).

        Only the layout writers use is read: the listed directories are tables of their own,
        not in the main chain, without SubIFDs of their own, and chained (if at all) by their
        next pointers in the order the tag lists them (Bio-Formats chains them, tifffile does
        not). Anything else — a loop, a next pointer leading elsewhere, a nested SubIFDs tag —
        raises FormatError: a sub-directory reachable one way and not another is a hiding place
        one reader sees and another does not."""
        if directory.index in self._sub_directories:
            return self._sub_directories[directory.index]
        entry = directory.entries.get(Tag.SUB_IFDS)
        if entry is None:
            return []
        if self.ndpi or entry.type not in INTEGER_ARRAYS or entry.type == Type.SHORT:
            raise FormatError(f"{directory.name}: SubIFDs is not a list of offsets")
        if not 0 < entry.count <= MAX_SUB_DIRECTORIES:
            raise FormatError(f"{directory.name}: SubIFDs lists {entry.count} directories")
        offsets = [int(o) for o in self._integers(entry, directory)]
        main = {d.offset for d in self.directories}
        known = {d.offset for children in self._sub_directories.values() for d in children}
        if len(set(offsets)) != len(offsets) or main.intersection(offsets) or known.intersection(offsets):
            raise FormatError(f"{directory.name}: SubIFDs lists a directory twice")
        base = len(self.directories) + sum(len(c) for c in self._sub_directories.values())
        children = []
        for position, offset in enumerate(offsets):
            if not 0 < offset < self.size:
                raise FormatError(f"{directory.name}: SubIFDs points past the end of the file")
            child = self.read_directory(offset, base + position)
            child.name, child.parent = f"{directory.name} SubIFD {position + 1}", directory.index
            following = offsets[position + 1] if position + 1 < len(offsets) else 0
            if child.next_offset not in (0, following):
                raise FormatError(f"{child.name}: its next pointer leads outside the SubIFDs list")
            if Tag.SUB_IFDS in child.entries:
                raise FormatError(f"{child.name}: has SubIFDs of its own")
            children.append(child)
        self._sub_directories[directory.index] = children
        return children

    def fix_offset(self, directory_offset, offset, tag=None):
        """NDPI stores 32-bit offsets; OpenSlide restores the high bits as the largest value
        below the directory's own offset, or takes the first directory's if it has the same
        32-bit offset for the tag (openslide tifflike.c, fix_offset_ndpi)."""
        if not self.ndpi:
            return offset
        first = self.first_directory
        if tag is not None and first is not None and tag in first.entries \
                and first.entries[tag].stored_offset == offset:
            return first.entries[tag].value_offset
        result = (directory_offset & ~0xFFFFFFFF) | (offset & 0xFFFFFFFF)
        if result >= directory_offset:
            result = min(result - 0x100000000, result) if result >= 0x100000000 else result
        return result

    def _entry(self, raw, at, index, directory_offset):
        if self.bigtiff:
            tag, typ, count = struct.unpack(self.bo + "HHQ", raw[:12])
        else:
            tag, typ, count = struct.unpack(self.bo + "HHI", raw[:8])
        if typ not in TYPE_FORMAT:
            raise FormatError(f"directory {index}: {tag_name(tag)} has unknown type {typ}")
        size = TYPE_FORMAT[typ][0] * count
        if size > MAX_VALUE_BYTES:
            raise FormatError(f"directory {index}: {tag_name(tag)} is implausibly large")
        slot = self.slot
        field_at = at + (12 if self.bigtiff else 8)
        if size <= slot:
            return Entry(tag, typ, count, raw, field_at, size, True)
        stored = struct.unpack(self.bo + ("Q" if self.bigtiff else "I"), raw[-slot:])[0]
        pointer = self.fix_offset(directory_offset, stored, tag)
        if pointer + size > self.size:
            raise FormatError(f"directory {index}: {tag_name(tag)} points past the end of the file")
        return Entry(tag, typ, count, raw, pointer, size, False, stored)

    def raw_value(self, entry):
        return self._read(entry.value_offset, entry.size)

    def values(self, entry):
        """Numbers as a tuple (RATIONALs as numerator, denominator pairs flattened)."""
        _, code = TYPE_FORMAT[entry.type]
        n = entry.count * (2 if entry.type in RATIONALS else 1)
        return struct.unpack(f"{self.bo}{n}{code}", self.raw_value(entry))

    def value(self, directory, tag, default=None):
        entry = directory.entries.get(tag)
        if entry is None:
            return default
        if entry.type == Type.ASCII:
            return self.raw_value(entry).split(b"\0", 1)[0].decode("latin-1")
        if entry.type in (Type.UNDEFINED, Type.BYTE) and entry.count > 8:
            return self.raw_value(entry)
        vals = self.values(entry)
        return vals[0] if len(vals) == 1 else vals

    def text(self, directory, tag):
        """A text tag's value, "" if absent; a FormatError if it is there but not text."""
        entry = directory.entries.get(tag)
        if entry is None:
            return ""
        if entry.type != Type.ASCII:
            raise FormatError(f"{directory.name}: {tag_name(tag)} is not text")
        return self.value(directory, tag)

    def number(self, directory, tag, default=None):
        """A single-number tag's value, `default` if absent; a FormatError if it is not a number."""
        entry = directory.entries.get(tag)
        if entry is None:
            return default
        if entry.type in (Type.ASCII, Type.UNDEFINED) or entry.count != 1:
            raise FormatError(f"{directory.name}: {tag_name(tag)} is not a single number")
        value = self.values(entry)
        return value[0] / value[1] if entry.type in RATIONALS and value[1] else value[0]

    def data_ranges(self, directory):
        """Where a directory's strips or tiles lie: an (N, 2) array of (offset, length)."""
        import numpy as np
        entries = directory.entries
        tags = TILE_LAYOUT if all(t in entries for t in TILE_LAYOUT) else STRIP_LAYOUT
        if tags[0] not in entries or tags[1] not in entries:
            return ranges.array([])
        offsets, counts = (self._integers(entries[t], directory) for t in tags)
        if len(offsets) != len(counts):
            raise FormatError(f"directory {directory.index}: offsets and byte counts differ in number")
        if self.ndpi:  # OpenSlide's fix_offset_ndpi, for every strip at once
            d = directory.offset
            offsets = (d & ~0xFFFFFFFF) | (offsets & 0xFFFFFFFF)
            wrap = (offsets >= d) & (offsets >= 1 << 32)
            offsets[wrap] -= 1 << 32
        if np.any((counts > 0) & (offsets + counts > self.size)):
            raise FormatError(f"directory {directory.index}: image data runs past the end of the file")
        return ranges.array(np.column_stack((offsets, counts)))

    def _integers(self, entry, directory):
        """An integer array tag (tile offsets can be 100,000 long) as int64, without tuples."""
        import numpy as np
        if entry.type not in INTEGER_ARRAYS:
            raise FormatError(f"directory {directory.index}: {tag_name(entry.tag)} is not an integer array")
        return np.frombuffer(self.raw_value(entry), self.bo + INTEGER_ARRAYS[entry.type]).astype(np.int64)

    def is_tiled(self, directory):
        return Tag.TILE_WIDTH in directory.entries and Tag.TILE_LENGTH in directory.entries
