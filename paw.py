#!/usr/bin/env python3
"""paw: Parse and Anonymize Whole-slide images. Run `paw.py --help`.

Kept thin and importable by any Python so that too old an interpreter gets a sentence, not a
syntax error: Synology DSM ships Python 3.8, paw needs 3.10 or newer.
"""
import os
import sys

if sys.version_info < (3, 10):
    sys.stderr.write("paw: Python 3.10 or newer is needed (this is %d.%d); see README, "
                     "'Installing on Synology DSM 7'\n" % sys.version_info[:2])
    sys.exit(2)

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))

from paw.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
