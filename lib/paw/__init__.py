"""paw: Parse and Anonymize Whole-slide images, in place, without decoding image tiles."""

__version__ = "0.1.0"
