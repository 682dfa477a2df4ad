"""The replacement label: a freshly drawn image a researcher can read instead of the paper label.

With `anonymize.label: replace` the destroyed label is followed by a new one showing what the
output name shows (the pseudonym or case pseudonym and the groups naming.template keeps) or the
configured label_text, and a QR code of the slide's pseudonym. The label never shows more than
the name: the case group's value can reach neither (config.py refuses it). It is drawn from
nothing: no pixel of the original label is read, so none can survive into it.

Drawing needs Pillow and segno (requirements-label.txt). Without them paw destroys labels as
it does by default and says so once per run: a missing optional package must never stop
anonymization.
"""

import logging
import zlib
from dataclasses import dataclass

from . import naming

log = logging.getLogger("paw")

WIDTH, HEIGHT = 640, 320
MARGIN = 16
MAX_LINES = 6  # what fits at the smallest comfortable size
FOOTER = "label replaced by paw"
_warned = []


@dataclass
class Label:
    """An 8-bit grayscale image, row by row; each format stores it in its own encoding."""
    width: int
    height: int
    pixels: bytes

    def deflated(self):
        """TIFF Compression 8 (Adobe Deflate): lossless, so the QR code stays exact."""
        return zlib.compress(self.pixels, 6)  # level 9: 6x the time for 10 % fewer bytes

    def rgb(self):
        """Uncompressed RGB, for formats that accept nothing else (DICOM explicit-LE RGB)."""
        import numpy as np
        return np.repeat(np.frombuffer(self.pixels, np.uint8), 3).tobytes()

    def jpeg(self):
        """A baseline RGB JPEG, 4:4:4 so text edges stay sharp (MRXS layers are JPEGs)."""
        from io import BytesIO
        from PIL import Image
        out = BytesIO()
        Image.frombytes("L", (self.width, self.height), self.pixels).convert("RGB").save(
            out, "JPEG", quality=92, subsampling=0)
        return out.getvalue()


def missing():
    """Why a label cannot be drawn here ('' if it can)."""
    try:
        import PIL.ImageDraw  # noqa: F401
        import segno  # noqa: F401
    except ImportError as exc:
        return f"{exc.name} is not installed"
    return ""


def wanted(config):
    """True if this slide gets a drawn label; warns once per run when the extra is missing."""
    if not config.replace_label:
        return False
    reason = missing()
    if reason and not _warned:
        _warned.append(reason)
        log.warning("anonymize.label is 'replace' but %s (pip install -r requirements-label.txt); "
                    "labels are destroyed without a replacement", reason)
    return not reason


def text_lines(label_text, name_template, values):
    """What is printed. `values` are naming.fields(): the pseudonyms and the kept groups. The
    configured label_text, or else the output name's fields in the template's order: its
    pseudonym (or the case pseudonym when the name has no other) in large type, then one
    `name: value` line per other field the name uses, so the label shows what the file name
    shows and nothing more."""
    if label_text:
        text = label_text.format(**values)
    else:
        used = naming.template_fields(name_template)
        first = "pseudonym" if "pseudonym" in used else "case"
        text = "\n".join([values[first]] + [f"{name}: {values[name]}" for name in used
                                             if name != first and values.get(name)])
    return [line.strip() for line in text.splitlines() if line.strip()]


def render(pseudonym, lines):
    """The label image: QR code of the pseudonym on the left, the lines of text on the right."""
    import numpy as np
    import segno
    from PIL import Image, ImageDraw, ImageFont

    image = Image.new("L", (WIDTH, HEIGHT), 255)
    qr = np.array(segno.make_qr(pseudonym, error="m").matrix, dtype=np.uint8)
    side = HEIGHT - 2 * MARGIN
    scale = side // (len(qr) + 8)  # four modules of quiet zone on every side
    code = np.kron(1 - qr, np.ones((scale, scale), np.uint8)) * 255
    image.paste(Image.fromarray(code, "L"), (MARGIN + 4 * scale, MARGIN + 4 * scale))
    draw = ImageDraw.Draw(image)
    left = MARGIN + side + MARGIN
    room = WIDTH - left - MARGIN
    y = MARGIN + 4 * scale
    for i, line in enumerate(lines[:MAX_LINES]):
        font = _fitting_font(ImageFont, draw, line, room, 40 if i == 0 else 28)
        draw.text((left, y), line, fill=0, font=font)
        y += font.size + 12
    small = _fitting_font(ImageFont, draw, FOOTER, room, 18)
    draw.text((left, HEIGHT - MARGIN - small.size - 4), FOOTER, fill=96, font=small)
    return Label(WIDTH, HEIGHT, image.tobytes())


def _fitting_font(ImageFont, draw, text, width, size):
    while size > 10:
        font = ImageFont.load_default(size=size)
        if draw.textlength(text, font=font) <= width:
            return font
        size -= 2
    return ImageFont.load_default(size=size)
