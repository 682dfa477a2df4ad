"""The shared TIFF-surgery core: a bounded parser and a planner of in-place edits.

Every vendor module describes *what* to remove; this module knows *how* to remove it from a TIFF
without touching image payload. It never decodes pixels and never moves tile data: directories
are rewritten where they stand (they only ever shrink), values are replaced by same-length-or-shorter
values, and every byte that the kept structure no longer references is zeroed. That last rule is
what makes unlinked label directories, dropped tags and writer leftovers vanish without a list of
every place a scanner might hide a name.

The parser is deliberately strict and bounded, because slides arrive from outside: IFD loops,
offsets past EOF and absurd counts raise `TiffError` with a one-line reason.
"""

import struct
from dataclasses import dataclass, field

from .. import ranges

# TIFF field types: code -> (bytes per item, struct code); RATIONAL types are two items each.
TYPES = {
    1: (1, "B"), 2: (1, "B"), 3: (2, "H"), 4: (4, "I"), 5: (8, "I"), 6: (1, "b"), 7: (1, "B"),
    8: (2, "h"), 9: (4, "i"), 10: (8, "i"), 11: (4, "f"), 12: (8, "d"), 13: (4, "I"),
    16: (8, "Q"), 17: (8, "q"), 18: (8, "Q"),
}
ASCII = 2

MAX_DIRECTORIES = 1024       # no scanner writes more; a longer chain is hostile
MAX_ENTRIES = 1024           # per directory
MAX_VALUE_BYTES = 256 << 20  # one tag value (tile offset arrays of a 20 GB slide are < 2 MiB)

# Tags that hold image structure: kept as they are.
STRUCTURAL = frozenset({
    254, 255, 256, 257, 258, 259, 262, 263, 266, 273, 274, 277, 278, 279, 280, 281, 282, 283,
    284, 290, 291, 296, 317, 318, 319, 320, 322, 323, 324, 325, 338, 339, 340, 341, 347,
    529, 530, 531, 532, 32997, 32998, 34675,
})
# Descriptive tags naming a product, not a person or a unit: kept, and covered by verification.
PRODUCT = frozenset({271, 272, 305})  # Make, Model, Software

TAG_NAMES = {
    269: "DocumentName", 270: "ImageDescription", 271: "Make", 272: "Model", 285: "PageName",
    305: "Software", 306: "DateTime", 315: "Artist", 316: "HostComputer", 330: "SubIFDs",
    700: "XMP", 33432: "Copyright", 33723: "IPTC", 34377: "Photoshop", 34665: "EXIF",
    34853: "GPS", 37724: "ImageSourceData", 40965: "Interoperability", 42016: "ImageUniqueID",
    65427: "NDPI SlideLabel", 65428: "NDPI AuthCode", 65442: "NDPI ScannerSerialNumber",
    65448: "NDPI FirmwareVersion", 65449: "NDPI properties",
}


def tag_name(code):
    return TAG_NAMES.get(code, f"tag {code}")


class TiffError(Exception):
    """The file is not a TIFF paw can safely edit; the message is the one-line reason."""


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
    index: int
    offset: int                 # where the entry count starts
    entries: dict               # tag -> Entry, in file order
    table_size: int             # count field + entries + next pointer
    next_offset: int


class Tiff:
    """A parsed TIFF: header facts, the main directory chain, and value access."""

    def __init__(self, fh):
        self.fh = fh
        fh.seek(0, 2)
        self.size = fh.tell()
        head = self._read(0, min(16, self.size))
        if len(head) < 8 or head[:2] not in (b"II", b"MM"):
            raise TiffError("not a TIFF file")
        self.bo = "<" if head[:2] == b"II" else ">"
        magic = struct.unpack(self.bo + "H", head[2:4])[0]
        self.ndpi = False
        self.first_directory = None
        if magic == 42:
            self.bigtiff = False
            self.first_pointer_at = 4
            self._layout()
            first = struct.unpack(self.bo + "I", head[4:8])[0]
            if len(head) >= 12:
                first = self._detect_ndpi(struct.unpack(self.bo + "Q", head[4:12])[0], first)
        elif magic == 43 and len(head) >= 16:
            self.bigtiff = True
            self.first_pointer_at, first = 8, struct.unpack(self.bo + "Q", head[8:16])[0]
            self._layout()
        else:
            raise TiffError(f"not a TIFF file (magic number {magic})")
        self.directories = self._walk_chain(first)

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
        """OpenSlide's rule: NDPI if the 64-bit first offset leads to a directory with tag 65420."""
        if not 0 < first64 < self.size:
            return first32
        self.ndpi = True
        self._layout()
        try:
            directory = self.read_directory(first64, 0)
        except TiffError:
            directory = None
        if directory is not None and 65420 in directory.entries:
            return first64
        self.ndpi = False
        self._layout()
        return first32

    # --- reading -------------------------------------------------------------------------------

    def _read(self, offset, length):
        if offset < 0 or length < 0 or offset + length > self.size:
            raise TiffError(f"a structure at offset {offset} runs past the end of the file")
        self.fh.seek(offset)
        return self.fh.read(length)

    def _walk_chain(self, offset):
        directories, seen = [], set()
        while offset:
            if offset in seen:
                raise TiffError("the directory chain loops back on itself")
            if len(directories) >= MAX_DIRECTORIES:
                raise TiffError(f"more than {MAX_DIRECTORIES} directories")
            seen.add(offset)
            directory = self.read_directory(offset, len(directories))
            directories.append(directory)
            offset = directory.next_offset
        if not directories:
            raise TiffError("the TIFF has no image directory")
        return directories

    def read_directory(self, offset, index):
        csize = 8 if self.bigtiff else 2
        count = struct.unpack(self.bo + self.count_code, self._read(offset, csize))[0]
        if not 0 < count <= MAX_ENTRIES:
            raise TiffError(f"directory {index} claims {count} entries")
        table = self._read(offset + csize, count * self.entry_size + self.pointer_size)
        high = self._read(offset + csize + len(table), 4 * count) if self.ndpi else bytes(4 * count)
        entries = {}
        for i in range(count):
            raw = table[i * self.entry_size:(i + 1) * self.entry_size]
            entry = self._entry(raw, offset + csize + i * self.entry_size, index, offset)
            entry.high = high[4 * i:4 * i + 4]
            if entry.tag in entries:
                raise TiffError(f"directory {index} has {tag_name(entry.tag)} twice")
            entries[entry.tag] = entry
        next_offset = struct.unpack(self.bo + self.pointer_code, table[-self.pointer_size:])[0]
        if next_offset >= self.size:
            raise TiffError(f"directory {index} points past the end of the file")
        size = csize + len(table) + len(high) if self.ndpi else csize + len(table)
        directory = Directory(index, offset, entries, size, next_offset)
        if self.first_directory is None and self.ndpi and 65420 in entries:
            self.first_directory = directory
        return directory

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
        if typ not in TYPES:
            raise TiffError(f"directory {index}: {tag_name(tag)} has unknown type {typ}")
        size = TYPES[typ][0] * count
        if size > MAX_VALUE_BYTES:
            raise TiffError(f"directory {index}: {tag_name(tag)} is implausibly large")
        slot = self.slot
        field_at = at + (12 if self.bigtiff else 8)
        if size <= slot:
            return Entry(tag, typ, count, raw, field_at, size, True)
        stored = struct.unpack(self.bo + ("Q" if self.bigtiff else "I"), raw[-slot:])[0]
        pointer = self.fix_offset(directory_offset, stored, tag)
        if pointer + size > self.size:
            raise TiffError(f"directory {index}: {tag_name(tag)} points past the end of the file")
        return Entry(tag, typ, count, raw, pointer, size, False, stored)

    def raw_value(self, entry):
        return self._read(entry.value_offset, entry.size)

    def values(self, entry):
        """Numbers as a tuple (RATIONALs as numerator, denominator pairs flattened)."""
        itemsize, code = TYPES[entry.type]
        n = entry.count * (2 if entry.type in (5, 10) else 1)
        return struct.unpack(f"{self.bo}{n}{code}", self.raw_value(entry))

    def value(self, directory, tag, default=None):
        entry = directory.entries.get(tag)
        if entry is None:
            return default
        if entry.type == ASCII:
            return self.raw_value(entry).split(b"\0", 1)[0].decode("latin-1")
        if entry.type in (7, 1) and entry.count > 8:
            return self.raw_value(entry)
        vals = self.values(entry)
        return vals[0] if len(vals) == 1 else vals

    def text(self, directory, tag):
        """A text tag's value, "" if absent; a TiffError if it is there but not text."""
        entry = directory.entries.get(tag)
        if entry is None:
            return ""
        if entry.type != ASCII:
            raise TiffError(f"directory {directory.index}: {tag_name(tag)} is not text")
        return self.value(directory, tag)

    def number(self, directory, tag, default=None):
        """A single-number tag's value, `default` if absent; a TiffError if it is not a number."""
        entry = directory.entries.get(tag)
        if entry is None:
            return default
        if entry.type in (ASCII, 7) or entry.count != 1:
            raise TiffError(f"directory {directory.index}: {tag_name(tag)} is not a single number")
        value = self.values(entry)
        return value[0] / value[1] if entry.type in (5, 10) and value[1] else value[0]

    def data_ranges(self, directory):
        """Where a directory's strips or tiles lie: an (N, 2) array of (offset, length)."""
        import numpy as np
        entries = directory.entries
        tags = (324, 325) if 324 in entries and 325 in entries else (273, 279)
        if tags[0] not in entries or tags[1] not in entries:
            return ranges.array([])
        offsets, counts = (self._integers(entries[t], directory) for t in tags)
        if len(offsets) != len(counts):
            raise TiffError(f"directory {directory.index}: offsets and byte counts differ in number")
        if self.ndpi:  # OpenSlide's fix_offset_ndpi, for every strip at once
            d = directory.offset
            offsets = (d & ~0xFFFFFFFF) | (offsets & 0xFFFFFFFF)
            wrap = (offsets >= d) & (offsets >= 1 << 32)
            offsets[wrap] -= 1 << 32
        if np.any((counts > 0) & (offsets + counts > self.size)):
            raise TiffError(f"directory {directory.index}: image data runs past the end of the file")
        return ranges.array(np.column_stack((offsets, counts)))

    def _integers(self, entry, directory):
        """An integer array tag (tile offsets can be 100,000 long) as int64, without tuples."""
        import numpy as np
        kinds = {3: "u2", 4: "u4", 13: "u4", 16: "u8", 18: "u8"}
        if entry.type not in kinds:
            raise TiffError(f"directory {directory.index}: {tag_name(entry.tag)} is not an integer array")
        return np.frombuffer(self.raw_value(entry), self.bo + kinds[entry.type]).astype(np.int64)

    def is_tiled(self, directory):
        return 322 in directory.entries and 323 in directory.entries


@dataclass
class Plan:
    """Edits to apply to one file: absolute, idempotent, and serialisable for the journal.

    `removed` holds the values taken out (for verification to search for) and `actions` a
    human-readable list of what was done; neither is written to the file.
    """
    writes: list = field(default_factory=list)   # (offset, bytes)
    zeros: list = field(default_factory=list)    # (offset, length)
    removed: list = field(default_factory=list)
    actions: list = field(default_factory=list)
    kept_data: list = field(default_factory=list)  # (offset, length) of kept image payload
    blanked: list = field(default_factory=list)    # payload of kept directories, zeroed
    added: list = field(default_factory=list)      # image data paw appended (a drawn label)

    def to_json(self):
        return {"writes": [[o, b.hex()] for o, b in self.writes], "zeros": self.zeros,
                "removed": self.removed, "actions": self.actions, "kept_data": self.kept_data,
                "blanked": self.blanked, "added": self.added}

    @classmethod
    def from_json(cls, data):
        return cls([(o, bytes.fromhex(h)) for o, h in data["writes"]],
                   [tuple(z) for z in data["zeros"]], data["removed"], data["actions"],
                   [tuple(k) for k in data["kept_data"]], [tuple(b) for b in data["blanked"]],
                   [tuple(a) for a in data.get("added", [])])

    def apply(self, path):
        """Write every edit and fsync. Replaying a plan on a partly edited file finishes it.

        Zero ranges are cleared only where they hold data: holes are skipped and blocks that
        already read as zeros are not rewritten, so a replay, or a sparse gap of gigabytes,
        costs (almost) nothing.
        """
        import os
        fd = os.open(path, os.O_RDWR)
        try:
            for offset, data in self.writes:
                os.pwrite(fd, data, offset)
            for offset, length in self.zeros:
                for start, block in nonzero_blocks(fd, offset, length):
                    os.pwrite(fd, bytes(len(block)), start)
            os.fsync(fd)
        finally:
            os.close(fd)


class Surgery:
    """Collects what a vendor module decides, then turns it into a Plan.

    Vendor modules call `destroy` for directories whose image must go (label, macro), `blank`
    for one that must stay linked but lose its pixels, `drop` for tags to remove,
    `replace_ascii` for values to shorten in place and `append_label` to add the drawn label
    (`label`, set only with `anonymize.label: replace`).
    """

    def __init__(self, tiff, label=None):
        self.tiff = tiff
        self.label = label
        self.appended = None       # (description, NewSubfileType or None, strip) of the drawn label
        self.blanked = set()       # directory indexes kept in the chain with their pixels zeroed
        self.destroyed = set()     # directory indexes
        self.dropped = {}          # directory index -> set of tags
        self.replaced = {}         # (directory index, tag) -> bytes
        self.found = {}            # image roles seen, for inspect and the tests
        self.plan = Plan()

    def classify(self, role):
        """(directory, role) for every directory, counting the roles in `found`."""
        for directory in self.tiff.directories:
            kind = role(self.tiff, directory)
            self.count(kind)
            yield directory, kind

    def count(self, kind):
        self.found[kind] = self.found.get(kind, 0) + 1

    def destroy(self, directory, why):
        self.destroyed.add(directory.index)
        self.note(f"{why} destroyed")

    def blank(self, directory, why):
        """Keep the directory (a vendor needs it, e.g. for metadata it carries) but zero its
        pixels. The vendor module must also make sure no reader lists it any more."""
        self.blanked.add(directory.index)
        self.note(f"{why} pixels destroyed")

    def drop(self, directory, tag):
        self.dropped.setdefault(directory.index, set()).add(tag)
        if directory.entries[tag].type == ASCII:
            self.plan.removed.append(self.tiff.value(directory, tag))
        self.note(f"{tag_name(tag)} removed")

    def note(self, action):
        if action not in self.plan.actions:
            self.plan.actions.append(action)

    def replace_ascii(self, directory, tag, text, removed_values=(), encoding="latin-1"):
        """Shorten a text value in place. Text read with `Tiff.value` is latin-1 decoded, so
        writing latin-1 gives back the original bytes of whatever is kept."""
        entry = directory.entries[tag]
        data = text.encode(encoding, "xmlcharrefreplace")
        if entry.type == ASCII:
            data += b"\0"
        if len(data) > entry.size:
            raise TiffError(f"directory {directory.index}: new {tag_name(tag)} would be longer")
        self.replaced[(directory.index, tag)] = data
        self.plan.removed.extend(removed_values)

    def append_label(self, description, subfile_type=None):
        """Add the drawn label as a new stripped directory at the end of the chain, its table,
        description and pixels written after the end of the file: nothing of the slide moves.
        A classic TIFF ending near 4 GiB has no room for it: the label is then only destroyed."""
        strip = self.label.deflated()
        if not self.tiff.bigtiff and self.tiff.size + len(strip) + (1 << 12) >= 1 << 32:
            self.note("no drawn label: a classic TIFF cannot grow past 4 GiB")
            return
        self.appended = (description, subfile_type, strip)
        self.count("drawn label")
        self.note("label replaced by a drawn pseudonym label")

    def drop_unlisted(self, directory, allowed):
        """Drop every tag not in the format's `allowed` set (image structure, product names,
        the vendor tags its module handles).

        This is the fail-closed rule: DateTime, Artist, HostComputer, DocumentName, PageName, XMP,
        IPTC, EXIF/GPS sub-directories and any private tag go, and because unreferenced bytes are
        zeroed, whatever a dropped pointer tag pointed to goes with it.
        """
        for tag in list(directory.entries):
            if tag not in allowed:
                self.drop(directory, tag)

    def finish(self):
        """Compute the edits: new chain, rewritten tables, and zeros for everything unreferenced."""
        tiff, plan = self.tiff, self.plan
        kept = [d for d in tiff.directories if d.index not in self.destroyed]
        if not kept:
            raise TiffError("nothing would be left of the slide")
        protected = [(0, tiff.header_size)]
        kept_data, blanked = [], []
        appended_at = self._append() if self.appended else 0
        plan.writes.append((tiff.first_pointer_at, self._pack_offset(kept[0].offset)))
        for position, directory in enumerate(kept):
            next_offset = kept[position + 1].offset if position + 1 < len(kept) else appended_at
            table, values = self._rewrite(directory, next_offset)
            plan.writes.append((directory.offset, table))
            plan.writes.extend(values)
            protected.append((directory.offset, len(table)))
            protected.extend((o, len(b)) for o, b in values)
            for tag, entry in directory.entries.items():
                if tag in self.dropped.get(directory.index, ()) or entry.inline:
                    continue
                if (directory.index, tag) not in self.replaced:
                    protected.append((entry.value_offset, entry.size))
            (blanked if directory.index in self.blanked else kept_data).append(
                tiff.data_ranges(directory))
        kept_spans = ranges.merge(*kept_data)
        protected_spans = ranges.merge(protected, ranges.from_spans(kept_spans))
        for directory in tiff.directories:
            if directory.index in self.destroyed or directory.index in self.blanked:
                if ranges.overlaps(tiff.data_ranges(directory), protected_spans):
                    raise TiffError(f"directory {directory.index} shares image data with a kept "
                                    "image; its pixels cannot be destroyed")
        plan.zeros = ranges.complement(protected_spans, tiff.size)
        plan.kept_data = ranges.as_pairs(kept_spans)
        plan.blanked = ranges.as_pairs(ranges.merge(*blanked))
        # A value the format keeps in another tag on purpose (NDPI repeats the fluorescence
        # filter name in its shading data) is not a leak: do not search for it.
        kept_text = {tiff.value(d, tag).strip() for d in kept for tag, e in d.entries.items()
                     if e.type == ASCII and tag not in self.dropped.get(d.index, ())
                     and (d.index, tag) not in self.replaced}
        if self.appended:  # Ventana's drawn label is described `Label_Image` like the old one
            kept_text.add(self.appended[0])
        plan.removed = [v for v in plan.removed if v.strip() not in kept_text]
        return plan

    def _rewrite(self, directory, next_offset):
        """The directory's new table (same place, possibly fewer entries) and replaced values."""
        tiff = self.tiff
        dropped = self.dropped.get(directory.index, set())
        entries, high, value_writes = [], [], []
        for tag, entry in directory.entries.items():
            if tag in dropped:
                continue
            new = self.replaced.get((directory.index, tag))
            high.append(entry.high)
            if new is None:
                entries.append(entry.raw)
                continue
            slot = tiff.slot
            head = struct.pack(tiff.bo + ("HHQ" if tiff.bigtiff else "HHI"), tag, entry.type, len(new))
            if len(new) <= slot:
                entries.append(head + new.ljust(slot, b"\0"))
            else:
                entries.append(head + entry.raw[-slot:])
                value_writes.append((entry.value_offset, new))
        if not entries:
            raise TiffError(f"directory {directory.index} would be left empty")
        count = struct.pack(tiff.bo + tiff.count_code, len(entries))
        table = count + b"".join(entries) + self._pack_offset(next_offset)
        if tiff.ndpi:
            table += b"".join(high)
        return table, value_writes

    def _pack_offset(self, offset):
        return struct.pack(self.tiff.bo + self.tiff.pointer_code, offset)

    def _append(self):
        """Write the drawn label after the end of the file: directory, description, one
        Deflate-compressed 8-bit grayscale strip. Returns where the directory starts."""
        tiff, label = self.tiff, self.label
        description, subfile_type, strip = self.appended
        text = description.encode("ascii") + b"\0"
        stored_text = text if len(text) > tiff.slot else b""  # else it fits in its entry
        long_type = 16 if tiff.bigtiff else 4

        def directory(text_at, strip_at):
            subfile = [(254, 4, subfile_type)] if subfile_type is not None else []
            return subfile + [
                (256, 4, label.width), (257, 4, label.height), (258, 3, 8),
                (259, 3, 8),  # Adobe Deflate
                (262, 3, 1),  # BlackIsZero
                (270, ASCII, text_at if stored_text else text), (273, long_type, strip_at),
                (277, 3, 1), (278, 4, label.height), (279, long_type, len(strip)), (284, 3, 1)]

        at = (tiff.size + 15) & ~15  # directory, then the description if it needs room, the strip
        count = len(directory(0, 0))
        text_at = at + (8 if tiff.bigtiff else 2) + count * tiff.entry_size + tiff.pointer_size
        strip_at = (text_at + len(stored_text) + 15) & ~15
        fields = directory(text_at, strip_at)
        table = struct.pack(tiff.bo + tiff.count_code, len(fields))
        for tag, kind, value in fields:
            if kind == ASCII:
                count = len(text)
                slot = struct.pack(tiff.bo + ("Q" if tiff.bigtiff else "I"), value) if stored_text else value
            else:
                count, slot = 1, struct.pack(tiff.bo + TYPES[kind][1], value)
            table += struct.pack(tiff.bo + ("HHQ" if tiff.bigtiff else "HHI"), tag, kind, count)
            table += slot.ljust(tiff.slot, b"\0")
        table += self._pack_offset(0)
        block = table + stored_text
        self.plan.writes.append((at, block + bytes(strip_at - at - len(block)) + strip))
        self.plan.added = [(strip_at, len(strip))]
        return at


def data_segments(fd, offset, length):
    """(start, end) of the parts of a byte range that are not holes in a sparse file."""
    import errno
    import os
    end = offset + length
    while offset < end:
        try:
            data_at = os.lseek(fd, offset, os.SEEK_DATA)
        except OSError as exc:
            if exc.errno == errno.ENXIO:  # only a hole from here to EOF
                return
            data_at = offset              # file system without SEEK_DATA: read everything
        if data_at >= end:
            return
        try:
            hole_at = min(os.lseek(fd, data_at, os.SEEK_HOLE), end)
        except OSError:
            hole_at = end
        yield data_at, hole_at
        offset = hole_at


def nonzero_blocks(fd, offset, length, block_size=1 << 20):
    """(offset, bytes) of each block in the range that holds a non-zero byte; holes skipped."""
    import os
    for position, end in data_segments(fd, offset, length):
        while position < end:
            block = os.pread(fd, min(block_size, end - position), position)
            if not block:
                return
            if block.count(0) != len(block):
                yield position, block
            position += len(block)
