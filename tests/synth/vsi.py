"""Olympus VSI slide-scanner variants, built by this module alone (its own small reader of the
cellSens tag tree, never paw's) from the real cellSens file in ../shared/fixtures/olympus-vsi.

No public VS120/VS200 sample with a label exists; a slide scan differs from that microscope
file in having more image stacks: the label and the overview (Bio-Formats CellSensReader names
stacks called `Label`/`Overview` "label"/"overview"). `scanner_slide` appends copies of the
real stack's `2001` field to the collection volume (every offset inside a volume is relative to
it, so a copy is valid anywhere), names them, and writes their `stackN/frame_t_0.ets` files
with the planted label text inside the tiles. `set_string` plants text in any string field.
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


def scanner_slide(source_vsi, folder, name, stacks=(("Label", 2), ("Overview", 3)), planted=PLANTED_LABEL):
    """A copy of the real slide with extra stacks named as a slide scanner names them; each
    extra stack's ETS tiles carry `planted` (ASCII and UTF-16) as a label photo would."""
    target = copy_slide(source_vsi, folder, name)
    data = bytearray(open(target, "rb").read())
    every = fields(data)
    collection = next(f for f in every if f[5] == (2000,))
    volume = collection[3]
    members = [f for f in every if f[7] == volume]
    stack = next(f for f in members if f[2] == 2001)
    after = min((f[0] for f in members if f[0] > stack[0]), default=len(data))
    template = bytes(data[stack[0]:after])
    last = members[-1]
    for i, (stack_name, number) in enumerate(stacks):
        position = len(data) + (-len(data)) % 4
        data.extend(bytes(position - len(data)))
        struct.pack_into("<I", data, last[0] + 8, position - volume)   # link it after the last field
        copy = bytearray(template)
        struct.pack_into("<I", copy, 8, 0)          # it is the last field now
        struct.pack_into("<i", copy, 16, number)    # second tag: stackN
        data.extend(copy)
        flags = struct.unpack_from("<I", data, volume + 16)[0]
        struct.pack_into("<I", data, volume + 16, flags + 1)   # the collection has one field more
        named = [f for f in fields(data) if f[2] == 2030 and f[1] & VALUE in STRING_TYPES
                 and f[0] > position]
        at, _, _, value, size, *_ = named[0]
        data[value:value + size] = stack_name.encode("utf-16-le").ljust(size, b"\0")
        last = (position,)
        _label_ets(os.path.join(folder, f"_{name}_", "stack1", "frame_t_0.ets"),
                   os.path.join(folder, f"_{name}_", f"stack{number}", "frame_t_0.ets"), planted)
    with open(target, "wb") as fh:
        fh.write(data)
    return target


def _label_ets(source, target, planted):
    """A copy of an ETS file whose every tile carries `planted` after its first 64 bytes."""
    os.makedirs(os.path.dirname(target), exist_ok=True)
    shutil.copyfile(source, target)
    with open(target, "r+b") as fh:
        head = fh.read(64)
        dims = struct.unpack_from("<i", head, 12)[0]
        table, count = struct.unpack_from("<q", head, 32)[0], struct.unpack_from("<i", head, 40)[0]
        record = 4 * (dims + 5)
        for i in range(count):
            fh.seek(table + i * record + 4 + 4 * dims)
            offset, length = struct.unpack("<qi", fh.read(12))
            text = (planted.encode() + planted.encode("utf-16-le"))[:max(0, length - 64)]
            fh.seek(offset + 64)
            fh.write(text)
