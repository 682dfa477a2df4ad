"""The test generators' own TIFF writer (never paw's parser or surgery: that is what is tested).

Written by hand rather than with tifffile because the generators need what a general writer hides:
exact directory order, big-endian, BigTIFF and Hamamatsu NDPI layouts, sub-directories (EXIF,
GPS; SubIFDs with their own images, as OME-TIFF pyramids), pre-compressed payload passed through
untouched, and *sparse* payload (holes in the file) so a 20 GB slide costs no disk. Only the tag and type codes come from paw (tifftags.py): they
are facts of the format, not code under test.
"""

import struct
from dataclasses import dataclass, field

from paw.formats.tifftags import TYPE_FORMAT, Tag, Type


@dataclass
class Image:
    """One directory: its tags (code -> (type, value)) and its strips or tiles.

    `chunks` are payload bytes written as given; `sparse` is (count, size): that many chunks of
    that size left as holes (they read as zeros, i.e. uncompressed black pixels). `children`
    maps a pointer tag (EXIF, GPS) to the tags of the sub-directory it points at. `subifds` are
    Images listed by a SubIFDs tag (type LONG), written after this one's table and chained by
    their next pointers as Bio-Formats writes them (`chain_subifds=False`: not chained, as
    tifffile writes them).
    """
    tags: dict
    chunks: list = field(default_factory=list)
    tiled: bool = False
    sparse: tuple = None
    children: dict = field(default_factory=dict)
    subifds: list = field(default_factory=list)
    chain_subifds: bool = True


def encode(typ, value, bo):
    """(bytes, count) of a tag value: text and byte strings as given, numbers packed."""
    if typ == Type.ASCII:
        data = value.encode("latin-1") if isinstance(value, str) else value
        data = data if data.endswith(b"\0") else data + b"\0"
        return data, len(data)
    if typ in (Type.BYTE, Type.UNDEFINED) and isinstance(value, (bytes, bytearray)):
        return bytes(value), len(value)
    values = value if isinstance(value, (list, tuple)) else [value]
    if typ in (Type.RATIONAL, Type.SRATIONAL):
        flat = [x for pair in values for x in pair]
        return struct.pack(f"{bo}{len(flat)}{TYPE_FORMAT[typ][1]}", *flat), len(values)
    return struct.pack(f"{bo}{len(values)}{TYPE_FORMAT[typ][1]}", *values), len(values)


class _Layout:
    """Sizes of one TIFF flavour's structures."""

    def __init__(self, bigtiff, bo):
        self.bo, self.big = bo, bigtiff
        self.slot, self.pointer = (8, "Q") if bigtiff else (4, "I")
        self.entry, self.count = (20, "Q") if bigtiff else (12, "H")
        self.head = "HHQ" if bigtiff else "HHI"
        self.long = Type.LONG8 if bigtiff else Type.LONG

    def table_size(self, n):
        return struct.calcsize(self.count) + n * self.entry + self.slot

    def table(self, tags, values_at, next_at, high=None):
        table = struct.pack(self.bo + self.count, len(tags))
        for code in sorted(tags):
            typ, value = tags[code]
            data, count = encode(typ, value, self.bo)
            table += struct.pack(self.bo + self.head, code, typ, count)
            if code in values_at:
                table += struct.pack(self.bo + self.pointer, values_at[code] & (0xFFFFFFFF if high is not None else -1))
            else:
                table += data.ljust(self.slot, b"\0")
        return table + struct.pack(self.bo + ("Q" if high is not None else self.pointer), next_at)


def _place_values(layout, tags, position):
    """Offsets for the values that do not fit their entry, from `position` on (word-aligned)."""
    values_at = {}
    for code in sorted(tags):
        typ, value = tags[code]
        data, _ = encode(typ, value, layout.bo)
        if len(data) > layout.slot:
            position += position % 2
            values_at[code] = position
            position += len(data)
    return values_at, position + position % 2


def _place(layout, image, position):
    """Offsets of an image's table, values and sub-directories from `position`:
    (tags, table_at, values_at, children, subifds placed the same way), and where it ends."""
    n_chunks = image.sparse[0] if image.sparse else len(image.chunks)
    tags = dict(image.tags)
    off_tag, cnt_tag = (Tag.TILE_OFFSETS, Tag.TILE_BYTE_COUNTS) if image.tiled else \
        (Tag.STRIP_OFFSETS, Tag.STRIP_BYTE_COUNTS)
    tags[off_tag] = tags[cnt_tag] = (layout.long, [0] * n_chunks)
    for pointer in image.children:
        tags[pointer] = (Type.LONG, 0)
    if image.subifds:
        tags[Tag.SUB_IFDS] = (Type.LONG, [0] * len(image.subifds))
    table_at = position
    values_at, position = _place_values(layout, tags, position + layout.table_size(len(tags)))
    children = []
    for pointer, child in image.children.items():
        tags[pointer] = (Type.LONG, position)
        child_values, end = _place_values(layout, child, position + layout.table_size(len(child)))
        children.append((child, position, child_values))
        position = end
    subifds = []
    for sub in image.subifds:
        placed, position = _place(layout, sub, position)
        subifds.append(placed)
    if subifds:
        tags[Tag.SUB_IFDS] = (Type.LONG, [p[1] for p in subifds])
    return (tags, table_at, values_at, children, subifds), position


def write_tiff(path, images, bigtiff=False, byteorder="<"):
    """Header, then every directory with its values (and sub-directories), then all payload."""
    layout = _Layout(bigtiff, byteorder)
    position = 16 if bigtiff else 8
    placed = []  # (tags, table_at, values_at, [(child tags, child at, child values_at)], subifds)
    for image in images:
        where, position = _place(layout, image, position)
        placed.append(where)

    def every(images, placed):  # (image, placed) of the main chain and every SubIFD, in order
        for image, where in zip(images, placed):
            yield image, where
            yield from every(image.subifds, where[4])

    chunk_offsets = {}
    for image, where in every(images, placed):
        image_id = id(where)
        if image.sparse:
            count, size = image.sparse
            chunk_offsets[image_id] = ([position + i * size for i in range(count)], [size] * count)
            position += count * size
        else:
            offsets = []
            for chunk in image.chunks:
                offsets.append(position)
                position += len(chunk)
            chunk_offsets[image_id] = (offsets, [len(c) for c in image.chunks])

    def write(fh, images, placed, chained):
        for i, (image, where) in enumerate(zip(images, placed)):
            tags, table_at, values_at, children, subifds = where
            offsets, counts = chunk_offsets[id(where)]
            off_tag, cnt_tag = (Tag.TILE_OFFSETS, Tag.TILE_BYTE_COUNTS) if image.tiled else \
                (Tag.STRIP_OFFSETS, Tag.STRIP_BYTE_COUNTS)
            tags[off_tag], tags[cnt_tag] = (layout.long, offsets), (layout.long, counts)
            next_at = placed[i + 1][1] if i + 1 < len(placed) and chained else 0
            _write_directory(fh, layout, tags, table_at, values_at, next_at)
            for child, child_at, child_values in children:
                _write_directory(fh, layout, child, child_at, child_values, 0)
            if not image.sparse:
                for offset, chunk in zip(offsets, image.chunks):
                    fh.seek(offset)
                    fh.write(chunk)
            write(fh, image.subifds, subifds, image.chain_subifds)

    with open(path, "wb") as fh:
        mark = b"II" if byteorder == "<" else b"MM"
        if bigtiff:
            fh.write(mark + struct.pack(byteorder + "HHHQ", 43, 8, 0, placed[0][1]))
        else:
            fh.write(mark + struct.pack(byteorder + "HI", 42, placed[0][1]))
        write(fh, images, placed, True)
        fh.truncate(position)


def _write_directory(fh, layout, tags, table_at, values_at, next_at):
    for code, at in values_at.items():
        fh.seek(at)
        fh.write(encode(*tags[code], layout.bo)[0])
    fh.seek(table_at)
    fh.write(layout.table(tags, values_at, next_at))


def write_ndpi(path, directories, hole=0):
    """Hamamatsu's NDPI layout: classic little-endian TIFF with an 8-byte first-directory offset,
    an 8-byte next pointer after each directory followed by the high 32 bits of every entry's
    offset; image data and tag values come *before* their directory, so that OpenSlide's rule
    (the high bits are those of the largest value below the directory) restores offsets past
    4 GiB. `directories` are (tags, strip bytes) with tags as code -> (type, value) and the
    strip tags left out; `hole` bytes are left unwritten before the first strip."""
    layout = _Layout(False, "<")
    with open(path, "wb") as fh:
        position = 12 + hole
        strips = []
        for _, data in directories:
            strips.append(position)
            fh.seek(position)
            fh.write(data)
            position += len(data)
        previous_pointer_at = 4
        for (tags, data), strip in zip(directories, strips):
            tags = {**tags, Tag.STRIP_OFFSETS: (Type.LONG, [strip & 0xFFFFFFFF]),
                    Tag.STRIP_BYTE_COUNTS: (Type.LONG, [len(data)])}
            values_at, directory_at = _place_values(layout, tags, position)
            for code, at in values_at.items():
                fh.seek(at)
                fh.write(encode(*tags[code], "<")[0])
            high = b"".join(struct.pack("<I", values_at[code] >> 32 if code in values_at
                                        else strip >> 32 if code == Tag.STRIP_OFFSETS else 0)
                            for code in sorted(tags))
            table = layout.table(tags, values_at, 0, high=high)
            fh.seek(directory_at)
            fh.write(table + high)
            fh.seek(previous_pointer_at)
            fh.write(struct.pack("<Q", directory_at))
            previous_pointer_at = directory_at + 2 + 12 * len(tags)
            position = directory_at + len(table) + len(high)
        fh.seek(0)
        fh.write(b"II*\0")
