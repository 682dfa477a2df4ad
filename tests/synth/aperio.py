"""Synthetic Aperio SVS: the directory order and description layout of Aperio Image Library files.

Real files (OpenSlide's CMU-1 family) have: level 0 tiled; directory 1 a stripped thumbnail; more
tiled levels; then the label (NewSubfileType 1, LZW, description line `label WxH`) and the macro
(NewSubfileType 9, JPEG, `macro WxH`). The identifying description is repeated in directory 0,
the thumbnail and each level. First items have the real shapes (`WxH [x,y WxH] (TxT) JPEG/RGB
Q=70` on levels, `WxH -> wxh - ` on the thumbnail, GT450's `[0,0,WxH] ... JPEG/YCC Q=91`) and
the items the real CMU-1 files carry (ImageID, Parmset, ...) besides planted identifiers.
Payload here is deflate (tiles, macro) or raw (label) so the generator needs no codec; the
description says JPEG as real files do (paw never decodes tiles). `tile_compression=7` writes
real JPEG tiles, `33005` real JPEG 2000 codestreams (Pillow/OpenJPEG) as Aperio's RGB J2K
tiles; tests replace `jpeg_tile`/`j2k_tile` to plant text in tile headers.
"""

import zlib

from paw.formats.tifftags import Tag, Type

from . import (ACCESSION, BARCODE, DATE, DATETIME, HOST, OPERATOR, PATIENT, SERIAL, TILE, TIME,
               label_pixels, stripped, tiled)

IMAGE_ID = "7730461"   # a database record id: links back to the case
from .tiffwriter import write_tiff


def description(first_line, gt450=False, barcode_last=True):
    fields = [
        ("AppMag", "40"), ("StripeWidth", "1000"), ("ScanScope ID", SERIAL),
        ("Filename", f"{ACCESSION} A1 HE"), ("Date", DATE), ("Time", TIME),
        ("Time Zone", "GMT+01:00"), ("User", OPERATOR), ("Parmset", "USM Filter"), ("MPP", "0.2520"),
        ("Left", "25.691574"), ("Top", "23.449873"), ("LineCameraSkew", "-0.000424"),
        ("Focus Offset", "0.000000"), ("ImageID", IMAGE_ID), ("OriginalWidth", "46920"),
        ("Originalheight", "33014"), ("Filtered", "5"), ("Slide", "1"), ("Rack", "12"),
        ("Patient", PATIENT),
    ]
    if gt450:
        fields += [("Title", ACCESSION), ("ScannerType", "GT450"), ("Slot", "7")]
    fields.append(("Barcode", BARCODE))
    if not barcode_last:
        fields.append(("Exposure Time", "109"))
    library = "Aperio Leica Biosystems GT450 v1.0.1" if gt450 else "Aperio Image Library v12.0.15"
    return f"{library} \r\n{first_line}|" + "|".join(f"{k} = {v}" for k, v in fields)


def planted():
    return [PATIENT, ACCESSION, OPERATOR, SERIAL, DATE, TIME, DATETIME, BARCODE, HOST, IMAGE_ID,
            "USM Filter"]


def _level(width, height, level, desc, sparse, compression=None):
    tags = {Tag.IMAGE_DESCRIPTION: (Type.ASCII, desc), Tag.IMAGE_DEPTH: (Type.LONG, 1),
            Tag.DATE_TIME: (Type.ASCII, DATETIME)}
    if compression:
        tags[Tag.COMPRESSION] = (Type.SHORT, compression)
    image = tiled(tags, width, height, level, sparse)
    if compression in J2K and not sparse:
        image.chunks = [j2k_tile(i, level) for i in range(len(image.chunks))]
    elif compression == JPEG and not sparse:
        image.chunks = [jpeg_tile(i, level) for i in range(len(image.chunks))]
    return image


J2K, JPEG = (33003, 33005), 7


def jpeg_tile(index, level):
    """A complete JFIF JPEG of one RGB tile (GT450 tiles carry their own tables)."""
    import io

    from PIL import Image
    image = Image.new("RGB", (TILE, TILE), ((index * 37) % 256, (level * 91) % 256, 128))
    out = io.BytesIO()
    image.save(out, "JPEG", quality=70)
    return out.getvalue()


def j2k_tile(index, level):
    """A raw JPEG 2000 codestream of one RGB tile, as OpenJPEG writes it (with its COM)."""
    import io

    from PIL import Image
    image = Image.new("RGB", (TILE, TILE), ((index * 37) % 256, (level * 91) % 256, 128))
    out = io.BytesIO()
    image.save(out, "JPEG2000", no_jp2=True, irreversible=False)
    return out.getvalue()


def _strip_image(width, height, desc, subfile, raw, compression):
    return stripped({Tag.NEW_SUBFILE_TYPE: (Type.LONG, subfile), Tag.IMAGE_DESCRIPTION: (Type.ASCII, desc),
                     Tag.IMAGE_DEPTH: (Type.LONG, 1), Tag.DATE_TIME: (Type.ASCII, DATETIME)},
                    width, height, raw, compression)


def write(path, width=2048, height=1536, *, sparse=False, bigtiff=False, byteorder="<",
          gt450=False, label_line=True, label_subfile=1, barcode_last=True, extra_tags=None,
          tile_compression=None, edit=None, label_style="standard", later_tags=None):
    """Write a synthetic SVS and return the identifiers planted in it.

    For hostile variants: `edit(role, description)` may rewrite the description of "level0",
    "thumbnail" and "level1" (returning str, or bytes for other encodings); `extra_tags` go into
    directory 0 and `later_tags` into level 1; `label_style` "tiled" stores the label as a tiled
    directory without NewSubfileType or label line, "thumbnail" puts it at directory 1 (where
    the thumbnail belongs) without NewSubfileType and description."""
    edit = edit or (lambda role, text: text)
    codec = "J2K/RGB" if tile_compression in J2K else "JPEG/YCC" if gt450 else "JPEG/RGB"
    quality = "Q=91" if gt450 else "Q=70"
    head = (f"{width}x{height} [0,0,{width}x{height}] ({TILE}x{TILE}) {codec} {quality}" if gt450
            else f"{width}x{height} [0,0 {width}x{height}] ({TILE}x{TILE}) {codec} {quality}")
    desc0 = edit("level0", description(head, gt450, barcode_last))
    images = [_level(width, height, 0, desc0, sparse, tile_compression)]
    images[0].tags[315] = (2, OPERATOR)
    images[0].tags[316] = (2, HOST)
    images[0].tags.update(extra_tags or {})
    thumb_w, thumb_h = 128, max(1, 128 * height // width)
    thumb = bytes(thumb_w * thumb_h * 3)
    label_w, label_h = 96, 64
    if label_style == "thumbnail":  # the label where the thumbnail belongs, unmarked
        images.append(stripped({}, label_w, label_h, label_pixels(label_w, label_h)))
        del images[-1].tags[Tag.NEW_SUBFILE_TYPE]
    else:
        images.append(_strip_image(thumb_w, thumb_h, edit("thumbnail", description(
            f"{width}x{height} -> {thumb_w}x{thumb_h} - ", gt450, barcode_last)), 0, thumb, 1))
    w, h = width // 4, height // 4
    if w >= TILE:
        images.append(_level(w, h, 1, edit("level1", description(
            f"{width}x{height} [0,0 {width}x{height}] ({TILE}x{TILE}) -> {w}x{h} {codec} {quality}",
            gt450, barcode_last)), sparse, tile_compression))
        images[-1].tags.update(later_tags or {})
    label_desc = "Aperio Image Library v12.0.15 \n" + (f"label {label_w}x{label_h}" if label_line else "")
    if label_style == "tiled":  # a label stored tiled, without any label mark
        label = tiled({Tag.IMAGE_DESCRIPTION: (Type.ASCII, "Aperio Image Library v12.0.15 \n")},
                      label_w * 4, label_h * 4)
        label.chunks = [label_pixels(TILE, TILE)] * len(label.chunks)
        images.append(label)
    elif label_style == "standard":
        images.append(_strip_image(label_w, label_h, label_desc, label_subfile,
                                   label_pixels(label_w, label_h), 1))
    macro_w, macro_h = 320, 108
    macro = zlib.compress(label_pixels(macro_w, macro_h)[::-1], 1)  # deflate, as a pitfall asks
    images.append(_strip_image(macro_w, macro_h, "Aperio Image Library v12.0.15 \n"
                               f"macro {macro_w}x{macro_h}", 9, macro, 8))
    write_tiff(path, images, bigtiff=bigtiff, byteorder=byteorder)
    return planted()


def item_edit(key, value, roles=("level0",)):
    """An `edit` for aperio.write that puts `key = <value bytes>` in place of the key's item."""
    def edit(role, text):
        if role not in roles:
            return text
        items = text.split("|")
        raw = [i.encode("latin-1") for i in items]
        for n, item in enumerate(items):
            if item.partition("=")[0].strip() == key:
                raw[n] = key.encode() + b" = " + value
                break
        else:
            raw.append(key.encode() + b" = " + value)
        return b"|".join(raw)
    return edit
