#!/bin/bash
# Synology DSM 7 Task Scheduler: "User-defined script" for paw. See synology/README.md.
# Task Scheduler runs scripts with a minimal environment (HOME may be unset, PATH may lack
# /usr/local/bin), so everything here is an absolute path. Change the three lines below if your
# layout differs from the guide's; nothing else needs editing.
PAW_DIR="${PAW_DIR:-/volume1/paw/paw}"
PAW_PYTHON="${PAW_PYTHON:-/volume1/paw/venv/bin/python}"
# The site's configuration lives outside the checkout, so `git pull` never meets it (an older
# install kept it in the checkout: still found there).
if [ -z "$PAW_CONFIG" ]; then
    PAW_CONFIG=/volume1/paw/paw.yaml
    [ -f "$PAW_CONFIG" ] || PAW_CONFIG="$PAW_DIR/paw.yaml"
fi

export PATH="/usr/local/bin:/usr/bin:/bin"
export HOME="${HOME:-$PAW_DIR}"
export LANG="${LANG:-C.UTF-8}"
# paw's own exit status reaches Task Scheduler: 0 ok / nothing to do, 3 slides quarantined,
# 1 unfinished work, 2 configuration error. Non-zero triggers "terminated abnormally" mail.
exec "$PAW_PYTHON" "$PAW_DIR/paw.py" --config "$PAW_CONFIG" -q
