"""A small TIFF writer for synthetic slides (tests, `paw.py demo`, benchmarks).

Written by hand rather than with tifffile because the generators need what a general writer hides:
exact directory order, big-endian and BigTIFF variants, pre-compressed payload passed through
untouched, and *sparse* payload (holes in the file) so a 20 GB slide costs no disk.
"""

import struct
from dataclasses import dataclass, field

_CODES = {1: "B", 2: "B", 3: "H", 4: "I", 5: "I", 7: "B", 11: "f", 12: "d", 16: "Q"}
_SIZES = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 7: 1, 11: 4, 12: 8, 16: 8}


@dataclass
class Image:
    """One directory: its tags (code -> (type, value)) and its strips or tiles.

    `chunks` are payload bytes written as given; `sparse` is (count, size): that many chunks of
    that size left as holes (they read as zeros, i.e. uncompressed black pixels).
    """
    tags: dict
    chunks: list = field(default_factory=list)
    tiled: bool = False
    sparse: tuple = None


def _encode(typ, value, bo):
    if typ == 2:
        data = value.encode("latin-1") if isinstance(value, str) else value
        return data if data.endswith(b"\0") else data + b"\0", None
    if typ in (1, 7) and isinstance(value, (bytes, bytearray)):
        return bytes(value), len(value)
    values = value if isinstance(value, (list, tuple)) else [value]
    if typ == 5:
        values = [x for pair in values for x in pair]
        return struct.pack(f"{bo}{len(values)}I", *values), len(values) // 2
    return struct.pack(f"{bo}{len(values)}{_CODES[typ]}", *values), len(values)


def write_tiff(path, images, bigtiff=False, byteorder="<"):
    bo = byteorder
    offset_code, slot = ("Q", 8) if bigtiff else ("I", 4)
    entry_size = 20 if bigtiff else 12
    count_size = 8 if bigtiff else 2
    header_size = 16 if bigtiff else 8
    long_type = 16 if bigtiff else 4

    # Layout: header, then every directory with its out-of-line values, then all payload.
    position = header_size
    layouts = []
    for image in images:
        n_chunks = image.sparse[0] if image.sparse else len(image.chunks)
        tags = dict(image.tags)
        off_tag, cnt_tag = (324, 325) if image.tiled else (273, 279)
        tags[off_tag] = (long_type, [0] * n_chunks)
        tags[cnt_tag] = (long_type, [0] * n_chunks)
        table_at = position
        n = len(tags)
        position += count_size + n * entry_size + slot
        values_at = {}
        for code in sorted(tags):
            typ, value = tags[code]
            data, _ = _encode(typ, value, bo)
            if len(data) > slot:
                position += position % 2
                values_at[code] = position
                position += len(data)
        position += position % 2
        layouts.append((tags, table_at, values_at))

    chunk_offsets = []
    for image in images:
        if image.sparse:
            count, size = image.sparse
            chunk_offsets.append(([position + i * size for i in range(count)], [size] * count))
            position += count * size
        else:
            offsets = []
            for chunk in image.chunks:
                offsets.append(position)
                position += len(chunk)
            chunk_offsets.append((offsets, [len(c) for c in image.chunks]))
    total = position

    with open(path, "wb") as fh:
        if bigtiff:
            fh.write((b"II" if bo == "<" else b"MM") + struct.pack(bo + "HHHQ", 43, 8, 0, layouts[0][1]))
        else:
            fh.write((b"II" if bo == "<" else b"MM") + struct.pack(bo + "HI", 42, layouts[0][1]))
        for i, (image, (tags, table_at, values_at)) in enumerate(zip(images, layouts)):
            offsets, counts = chunk_offsets[i]
            off_tag, cnt_tag = (324, 325) if image.tiled else (273, 279)
            tags[off_tag] = (long_type, offsets)
            tags[cnt_tag] = (long_type, counts)
            table = struct.pack(bo + ("Q" if bigtiff else "H"), len(tags))
            for code in sorted(tags):
                typ, value = tags[code]
                data, count = _encode(typ, value, bo)
                count = len(data) // _SIZES[typ] if count is None else count
                head = struct.pack(bo + ("HHQ" if bigtiff else "HHI"), code, typ, count)
                if code in values_at:
                    fh.seek(values_at[code])
                    fh.write(data)
                    table += head + struct.pack(bo + offset_code, values_at[code])
                else:
                    table += head + data.ljust(slot, b"\0")
            next_at = layouts[i + 1][1] if i + 1 < len(layouts) else 0
            table += struct.pack(bo + offset_code, next_at)
            fh.seek(table_at)
            fh.write(table)
            if not image.sparse:
                for offset, chunk in zip(offsets, image.chunks):
                    fh.seek(offset)
                    fh.write(chunk)
        fh.truncate(total)
