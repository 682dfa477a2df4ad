"""Olympus VSI slide-scanner variants, built by this module alone (its own small reader of the
cellSens tag tree, never paw's) from the real cellSens file in ../shared/fixtures/olympus-vsi.

No public VS120/VS200 sample with a label exists; a slide scan differs from that microscope
file in having more image stacks: the label and the overview (Bio-Formats CellSensReader names
stacks called `Label`/`Overview` "label"/"overview"; STACK_TYPE 1 is an overview, 256 a macro).
`add_stack` appends a copy of the real stack's `2001` field to the collection volume (every
offset inside a volume is relative to it, so a copy is valid anywhere), names it in any
encoding, gives it a stack type in any width, and writes its `stackN/frame_t_0.ets` file with
`write_ets` (its own ETS writer): a smaller JPEG 2000 image of the planted label text, as a
label camera takes it. `set_string` plants text in any string field.
"""

import os
import shutil
import struct

SOURCE = ("olympus-vsi", "vsi-ets-test-jpg2k.vsi")
EXTRA_TAG, EXTENDED, INLINE, VALUE = 0x08000000, 0x10000000, 0x40000000, 0xFFFFFF
STRING_TYPES = (13, 8192, 8194)
PLANTED_LABEL = "LABEL-PATIENT-4711"


def fields(data, start=8, prefix=()):
    """(offset, type, tag, value offset, size, path, following, volume start) of every field."""
    size, magic, _, first, flags = struct.unpack_from("<HHIqI", data, start)
    assert (size, magic) == (24, 0x5349), start
    position, found = start + first, []
    for _ in range(flags & 0x0FFFFFFF):
        kind, tag, following, length = struct.unpack_from("<IiIi", data, position)
        value = position + 16 + (4 if kind & EXTRA_TAG else 0)
        found.append((position, kind, tag, value, length, prefix + (tag,), following, start))
        if kind & EXTENDED and kind & VALUE in (0, 1, 2):
            found += fields(data, value, prefix + (tag,))
        if not following:
            break
        position = start + following
    return found


def set_string(data, tag, text, occurrence=0, encoding="utf-16-le"):
    """Overwrite the `occurrence`-th string field with `tag`; its length stays (cut or NUL padded)."""
    hits = [f for f in fields(data) if f[2] == tag and f[1] & VALUE in STRING_TYPES and not f[1] & INLINE]
    at, _, _, value, size, *_ = hits[occurrence]
    data[value:value + size] = text.encode(encoding)[:size].ljust(size, b"\0")


def copy_slide(source_vsi, folder, name):
    """Copy the real slide (.vsi and _X_/) into `folder` under `name`; the new .vsi path."""
    stem = os.path.basename(source_vsi)[:-4]
    target = os.path.join(folder, name + ".vsi")
    shutil.copyfile(source_vsi, target)
    shutil.copytree(os.path.join(os.path.dirname(source_vsi), f"_{stem}_"), os.path.join(folder, f"_{name}_"))
    for root, dirs, files in os.walk(folder):
        for each in dirs + files:
            os.chmod(os.path.join(root, each), 0o755 if each in dirs else 0o644)
    return target


def text_image(text, width, height):
    """A 16-bit grey image with `text` drawn large, as a label photo shows it."""
    import numpy as np
    from PIL import Image, ImageDraw, ImageFont
    image = Image.new("L", (width, height), 255)
    try:
        font = ImageFont.load_default(size=max(12, height // 5))
    except TypeError:   # Pillow < 10.1
        font = ImageFont.load_default()
    ImageDraw.Draw(image).text((width // 20, height // 3), text, fill=0, font=font)
    return (np.asarray(image).astype("uint16") * 200)


def j2k(image):
    """A JPEG 2000 codestream of `image` (imagecodecs' OpenJPEG; its banner COM included)."""
    import imagecodecs
    return imagecodecs.jpeg2k_encode(image, codecformat="J2K", reversible=True)


def write_ets(path, image, planes=(1, 11, 2), compression=3, tile=None, extra_records=()):
    """An ETS file written from the layout alone (Bio-Formats parseETSFile, bioio-vsi _ets.py):
    a 64-byte SIS header, a 228-byte ETS header (uint16 grey, `compression`, tile size, no
    pyramid, extent = image size and `planes`), one tile of `image` per plane (JPEG 2000 or raw)
    and the tile table after the tiles. `extra_records` are (coordinates, payload) appended."""
    import itertools
    height, width = image.shape
    tile = tile or (width, height)
    payload = j2k(image) if compression == 3 else image.astype("<u2").tobytes()
    dims = 2 + len(planes) + 1
    extents = (width, height) + tuple(planes)
    second = struct.pack("<4siiiiiiiii", b"ETS\0", 0x30006, 4, 1, 1, compression, 100, tile[0], tile[1], 1)
    second = second.ljust(108, b"\0") + struct.pack("<i", 65535).ljust(40, b"\0") + struct.pack("<ii", -1, 0)
    second = second.ljust(184, b"\0") + struct.pack(f"<i{len(extents)}i", len(extents), *extents)
    second = second.ljust(228, b"\0")
    body, records, position = b"", [], 64 + len(second)
    for index, plane in enumerate(itertools.product(*(range(n) for n in planes))):
        records.append(((0, 0) + plane + (0,), position + len(body), len(payload), index))
        body += payload
    for coordinates, extra in extra_records:
        records.append((coordinates, position + len(body), len(extra), len(records)))
        body += extra
    table_at = position + len(body)
    table = b"".join(struct.pack(f"<i{dims}iqii", dims, *c, o, n, i) for c, o, n, i in records)
    head = struct.pack("<4siiiqiiqii", b"SIS\0", 64, 3, dims, 64, len(second), 0, table_at, len(records), 0)
    size = table_at + len(table)
    head = head.ljust(48, b"\0") + struct.pack("<q", size)
    head = head.ljust(64, b"\0")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as fh:
        fh.write(head + second + body + table)


def _link(data, volume):
    """Where a field appended to `data` starts, linked as the last field of the volume at
    `volume` (offsets in a volume are relative to it; its field count grows by one)."""
    members = [f for f in fields(data) if f[7] == volume]
    while len(data) % 4:
        data.append(0)
    position = len(data)
    struct.pack_into("<I", data, members[-1][0] + 8, position - volume)
    flags = struct.unpack_from("<I", data, volume + 16)[0]
    struct.pack_into("<I", data, volume + 16, flags + 1)
    return position


def _append_field(data, volume, kind, tag, payload, second=None, inline=None):
    """Append a field (the last of the volume at `volume`) to the end of `data`."""
    position = _link(data, volume)
    size = inline if inline is not None else len(payload)
    data.extend(struct.pack("<IiIi", kind | (EXTRA_TAG if second is not None else 0), tag, 0, size)
                + (struct.pack("<i", second) if second is not None else b"") + (payload if inline is None else b""))
    return position


# How a stack type (2074) may be written: field type word, value bytes (None: inline).
STACK_TYPE_ENCODINGS = {
    "int32": (5, "<i"), "int64": (7, "<q"), "int16": (3, "<h"), "uint8": (2, "<B"),
    "double": (10, "<d"), "inline": (5 | INLINE, None),
}


def _set_stack_type(data, props, value, encoding):
    """Give the 2005 volume `props` a STACK_TYPE by re-tagging one of its own fields in place
    (readers expect a volume's fields inside its byte span): the 8-byte creation time (2015)
    for a stored value, the inline 2077 for an inline one."""
    kind, form = STACK_TYPE_ENCODINGS[encoding]
    members = [f for f in fields(data) if f[7] == props]
    host = next(f for f in members if f[2] == (2077 if form is None else 2015))
    if form is None:
        struct.pack_into("<IiIi", data, host[0], kind, 2074, host[6], value)
    else:
        payload = struct.pack(form, float(value) if form == "<d" else value)
        struct.pack_into("<IiIi", data, host[0], kind, 2074, host[6], len(payload))
        data[host[3]:host[3] + 8] = payload.ljust(8, b"\0")


def add_stack(data, folder, number, name="Label", name_encoding="utf-16-le", stack_type=None,
              type_encoding="int32", size=(600, 300), text=PLANTED_LABEL, second_properties=None,
              ets=True, pixel_size=None):
    """Append to `data` (the .vsi) a copy of the real stack's 2001 field as stack `number`,
    named `name` (in `name_encoding`, cut or NUL padded to the field), with a STACK_TYPE field
    of `stack_type` in `type_encoding` (none when None), its image boundary set to `size`, a
    second 2005 volume naming it `second_properties` if given, its pixel size (2019, µm) set
    to `pixel_size` if given; and write its ETS file: a
    `size` image of `text` (JPEG 2000, one tile per plane) in `folder/stackN/frame_t_0.ets`."""
    every = fields(data)
    collection = next(f for f in every if f[5] == (2000,))
    volume = collection[3]
    members = [f for f in every if f[7] == volume]
    stack = next(f for f in members if f[2] == 2001)
    after = min((f[0] for f in members if f[0] > stack[0]), default=len(data))
    copy = bytearray(data[stack[0]:after])
    struct.pack_into("<I", copy, 8, 0)
    struct.pack_into("<i", copy, 16, number)
    position = _link(data, volume)
    data.extend(copy)
    named = [f for f in fields(data) if f[0] > position and f[2] == 2030 and f[1] & VALUE in STRING_TYPES]
    at, _, _, value, length, *_ = named[0]
    data[value:value + length] = name.encode(name_encoding)[:length].ljust(length, b"\0")
    boundary = [f for f in fields(data) if f[0] > position and f[2] == 2053]
    struct.pack_into("<iiii", data, boundary[0][3], 0, 0, *size)
    props = next(f for f in fields(data) if f[0] > position and f[2] == 2005 and f[5][-2] == 2001)
    if stack_type is not None:
        _set_stack_type(data, props[3], stack_type, type_encoding)
    if pixel_size is not None:
        scale = next(f for f in fields(data) if f[7] == props[3] and f[2] == 2019)
        struct.pack_into("<dd", data, scale[3], pixel_size, pixel_size)
    if second_properties is not None:
        inner = struct.pack("<HHIqI4s", 24, 0x5349, 0, 24, 1, b"\0\0\0\0") + struct.pack(
            "<IiIi", 8192, 2030, 0, 2 * len(second_properties)) + second_properties.encode("utf-16-le")
        stack_volume = next(f for f in fields(data) if f[0] == position)[3]
        _append_field(data, stack_volume, 1 | EXTENDED | 0x80000000, 2005, inner)
    if ets:
        write_ets(os.path.join(folder, f"stack{number}", "frame_t_0.ets"), text_image(text, *size))
    return position


def scanner_slide(source_vsi, folder, name, stacks=(("Label", 2, None, (600, 300)), ("Overview", 3, 1, (1200, 400))),
                  planted=PLANTED_LABEL):
    """A copy of the real slide with the stacks a slide scanner adds: each (name, number,
    stack type or None, size) is a smaller image of `planted` (a label photo, an overview of the
    slide and its label), named as a scanner names it. The real stack stays the largest."""
    target = copy_slide(source_vsi, folder, name)
    data = bytearray(open(target, "rb").read())
    for stack_name, number, stack_type, size in stacks:
        add_stack(data, os.path.join(folder, f"_{name}_"), number, stack_name, stack_type=stack_type,
                  size=size, text=planted)
    with open(target, "wb") as fh:
        fh.write(data)
    return target
