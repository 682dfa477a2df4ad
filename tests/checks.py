"""Independent checks on outputs: OpenSlide's view, tile bytes read with tifffile, raw byte search."""

import base64
import hashlib
import os

import openslide
import tifffile


def openslide_view(path):
    """Vendor, associated image names and a level-0 region; a fresh handle each time."""
    slide = openslide.OpenSlide(path)
    try:
        w, h = slide.level_dimensions[0]
        region = slide.read_region((0, 0), 0, (min(w, 300), min(h, 300))).tobytes()
        return slide.properties.get("openslide.vendor"), sorted(slide.associated_images), region
    finally:
        slide.close()


def tile_digest(path, skip=()):
    """SHA-256 over the raw bytes of every tile of every tiled directory (but `skip`), in order."""
    digest = hashlib.sha256()
    with tifffile.TiffFile(path, is_ndpi=False) as tf, open(path, "rb") as fh:
        for index, page in enumerate(tf.pages):
            if page.is_tiled and index not in skip:
                for offset, count in zip(page.dataoffsets, page.databytecounts):
                    fh.seek(offset)
                    digest.update(fh.read(count))
    return digest.hexdigest()


def encodings(value):
    data = value.encode()
    yield data
    yield value.encode("utf-16-le")
    for shift in range(3):  # base64 of the value at each alignment inside a longer payload
        encoded = base64.b64encode(b"\0" * shift + data)[4 if shift else 0:]
        yield encoded[: max(8, len(encoded) - 4)]


def leaked(path, values):
    with open(path, "rb") as fh:
        data = fh.read()
    return [v for v in values for e in encodings(v) if e in data]


def leaked_outside_payload(path, values):
    """Planted values found outside the image payload tifffile sees (paw's guarantee: tile
    payload is never inspected, so a file that declares label bytes as a tile keeps them
    unless verify.full_scan is on)."""
    with open(path, "rb") as fh:
        data = bytearray(fh.read())
    if data[:2] in (b"II", b"MM"):
        with tifffile.TiffFile(path, is_ndpi=path.endswith(".ndpi")) as tf:
            payload = sorted((int(o), int(n)) for page in tf.pages
                             for o, n in zip(page.dataoffsets, page.databytecounts) if n)
    else:  # iSyntax: the binary image data after the header's end-of-text marker
        end = data.find(b"\r\n\x04")
        payload = [(end, len(data) - end)] if end >= 0 else []
    for offset, count in payload:
        data[offset:offset + count] = bytes(min(count, max(0, len(data) - offset)))
    data = bytes(data)
    return [v for v in values for e in encodings(v) if e in data]


def mrxs_leaks(path, planted):
    """Files of an MRXS slide (the .mrxs and its folder) holding a planted value."""
    folder = path[:-5]
    return [n for n in [path] + [os.path.join(folder, f) for f in os.listdir(folder)]
            if leaked(n, planted)]


def folder_leaks(folder, planted):
    """Files of a slide folder (DICOM) holding a planted value."""
    return [n for n in os.listdir(folder) if leaked(os.path.join(folder, n), planted)]


def mrxs_tiles(path):
    """The raw bytes of every zoom-level tile, read through Index.dat."""
    from paw.formats.mrxs import describe
    _, layers, index = describe(path)
    chunks = []
    for fileno, offset, length in index.tiles:
        with open(os.path.join(path[:-5], layers.data_files[fileno]), "rb") as fh:
            fh.seek(offset)
            chunks.append(fh.read(length))
    return chunks


def leaks_below(path, values):
    """(file name, value) for every value found in a file below `path` (or in a file's name),
    as UTF-8, UTF-16 (either byte order), Latin-1 or base64."""
    path = str(path)
    files = [os.path.join(root, n) for root, _, names in os.walk(path) for n in names] \
        if os.path.isdir(path) else [path]
    found = []
    for file in files:
        with open(file, "rb") as fh:
            data = fh.read()
        for value in values:
            forms = list(encodings(value)) + [value.encode("latin-1", "replace"), value.encode("utf-16-be")]
            if value in os.path.basename(file) or any(form in data for form in forms):
                found.append((os.path.basename(file), value))
    return found


def refuse_claims(monkeypatch, inbox):
    """Every move out of `inbox` fails with EACCES (a claim paw may not make), as on a share
    whose permissions changed under paw."""
    import errno
    from paw import fsops
    real = fsops.move

    def move(src, dst, **kwargs):
        if src.startswith(inbox + os.sep):
            raise PermissionError(errno.EACCES, "Permission denied", src)
        return real(src, dst, **kwargs)

    monkeypatch.setattr(fsops, "move", move)
