"""Packing a TIFF directory: used where paw adds an image (the drawn label) and by the demo's
sample slide. Fields are (tag, type, value): bytes for ASCII/UNDEFINED (ASCII gets its NUL),
a number or a sequence of numbers otherwise. A value too long for its entry's slot follows the
table, word-aligned, as TIFF 6.0 section 2 allows."""

import struct

from .tifftags import TYPE_FORMAT, Type


def _value(bo, kind, value):
    if kind in (Type.ASCII, Type.UNDEFINED, Type.BYTE) and isinstance(value, (bytes, str)):
        data = value.encode("latin-1") if isinstance(value, str) else value
        if kind == Type.ASCII and not data.endswith(b"\0"):
            data += b"\0"
        return data, len(data)
    values = list(value) if isinstance(value, (list, tuple)) else [value]
    return struct.pack(f"{bo}{len(values)}{TYPE_FORMAT[kind][1]}", *values), len(values)


def directory_size(bigtiff, fields):
    """Bytes `pack_directory` writes for these fields (values' sizes are what count)."""
    slot = 8 if bigtiff else 4
    size = (8 if bigtiff else 2) + len(fields) * (20 if bigtiff else 12) + slot
    for _, kind, value in fields:
        data, _ = _value("<", kind, value)
        if len(data) > slot:
            size += len(data) + len(data) % 2
    return size


def pack_directory(bo, bigtiff, fields, at, next_offset=0):
    """The directory table at offset `at`, then its out-of-line values (sorted by tag)."""
    slot, pointer = (8, "Q") if bigtiff else (4, "I")
    fields = sorted(fields, key=lambda f: f[0])
    table = struct.pack(bo + ("Q" if bigtiff else "H"), len(fields))
    values_at = at + len(table) + len(fields) * (20 if bigtiff else 12) + slot
    values = b""
    for tag, kind, value in fields:
        data, count = _value(bo, kind, value)
        table += struct.pack(bo + ("HHQ" if bigtiff else "HHI"), tag, kind, count)
        if len(data) > slot:
            table += struct.pack(bo + pointer, values_at + len(values))
            values += data + bytes(len(data) % 2)
        else:
            table += data.ljust(slot, b"\0")
    return table + struct.pack(bo + pointer, next_offset) + values
