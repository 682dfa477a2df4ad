"""Before anything moves: every folder paw needs can be used and the ledger can take a row.

A problem found only after delivery (say, an unwritable ledger folder) would leave a slide in
the outbox without its ledger row and fail every later run. So `run` checks first and stops
with exit status 2 and one line naming what and how to fix it, with nothing claimed; `status`
shows the same lines. The PostgreSQL ledger is checked by opening it (job.py), which needs the
run's lock.

Kept free of parsing code: every idle tick runs it.
"""

import os

from .errors import NotReady

READ, WRITE = os.R_OK | os.X_OK, os.W_OK | os.X_OK


def problems(config):
    """Every reason a run could not work, as one line each (empty: ready)."""
    found = []
    for key, need in (("inbox", READ | WRITE), ("outbox", WRITE), ("quarantine", WRITE)):
        folder = getattr(config, key)
        if not os.path.isdir(folder):
            found.append(f"{key}: folder {folder} does not exist; create it, fix '{key}' in "
                         f"{config.path}, or run 'paw.py init' for the default layout")
        elif _read_only(folder):
            found.append(_read_only_line(key, folder))
        elif not os.access(folder, need):
            found.append(f"{key}: {_who()} cannot {_verbs(need)} {folder}; give that user "
                         f"{_rights(need)} permission on it")
    found += _private_folder("state_dir", config.state_dir)
    if not config.postgres_dsn:
        from .ledger.csvfile import cases_path
        found += (ledger_file_problems("ledger.csv", config.ledger_csv)
                  or ledger_file_problems("ledger.csv", cases_path(config.ledger_csv)))
    return found


def check(config):
    """Raise NotReady with the first problem; paw stops before it claims anything."""
    config.require_folders()
    found = problems(config)
    if found:
        raise NotReady(found[0] + (f" (and {len(found) - 1} more: see 'paw.py status')"
                                   if len(found) > 1 else ""))


def check_runner(state_dir):
    """Root must not run paw on a state folder that belongs to paw's user: the files it would
    replace (attention.json, the run history, the stability record) would become root's, and
    the next run by paw's user could no longer write them (it starts them afresh: history
    lost). Another user simply cannot write the 0700 folder (problems() says so)."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return
    try:
        owner = os.stat(state_dir).st_uid
    except OSError:
        return  # none yet: root's run creates it, and it is then root's
    if owner != 0:
        from .fsops import user_name
        name = user_name(owner)
        raise NotReady(f"the state folder {state_dir} belongs to {name} (uid {owner}); run as that "
                       f"user: sudo -u {name} {_command()} (or, for a run, 'systemctl start paw.service': "
                       "only the unit keeps CAP_LEASE, which sees files still being written)")


def _command():
    """This run's command line, to repeat under sudo (or … when paw was not started as paw.py)."""
    import shlex
    import sys
    if not sys.argv or os.path.basename(sys.argv[0]) != "paw.py":
        return "…"
    return " ".join(shlex.quote(a) for a in [sys.executable, *sys.argv])


def ledger_file_problems(key, path):
    """A ledger file must be appendable: its folder exists and is writable, and the file, if
    there is one, is a plain file paw can write (never a link: paw opens it O_NOFOLLOW)."""
    folder = os.path.dirname(path) or "."
    if not os.path.isdir(folder):
        return [f"{key}: the folder {folder} of {os.path.basename(path)} does not exist; create "
                f"it (private to paw's user) or fix '{key}'"]
    if _read_only(folder):
        return [_read_only_line(key, folder)]
    if not os.access(folder, WRITE):
        return [f"{key}: {_who()} cannot write into {folder}, where {os.path.basename(path)} is "
                f"kept; give that user write permission on it"]
    if os.path.islink(path) or (os.path.lexists(path) and not os.path.isfile(path)):
        return [f"{key}: {path} is not a plain file (a link or a folder); move it away"]
    if os.path.exists(path) and not os.access(path, os.R_OK | os.W_OK):
        return [f"{key}: {_who()} cannot write {path}; give that user read and write permission "
                "on it (best: make it that user's file, mode 0600)"]
    return []


def _private_folder(key, folder):
    if os.path.isdir(folder):
        if _read_only(folder):
            return [_read_only_line(key, folder)]
        if not os.access(folder, READ | WRITE):
            return [f"{key}: {_who()} cannot use {folder}; give that user read, write and execute "
                    "permission on it (best: make it that user's folder, mode 0700)"]
        return []
    parent = os.path.dirname(folder.rstrip(os.sep)) or "."
    if not os.path.isdir(parent):
        return [f"{key}: parent folder {parent} does not exist; create it or fix '{key}'"]
    if _read_only(parent):
        return [_read_only_line(key, parent)]
    if not os.access(parent, WRITE):
        return [f"{key}: {_who()} cannot create {folder}; create it for that user (mode 0700) or "
                f"give it write permission on {parent}"]
    return []


def _read_only(path):
    """Whether `path` is on a file system mounted read-only (for paw: systemd's
    ProtectSystem=strict makes every path outside ReadWritePaths one). No permission helps."""
    try:
        return bool(os.statvfs(path).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def _read_only_line(key, path):
    return (f"{key}: {path} is on a read-only file system (systemd ReadWritePaths?); under the "
            "shipped unit keep state_dir under /srv/slides and the ledger in /var/lib/paw, or "
            "add the folder to ReadWritePaths (elsewhere: remount it read-write)")


def _who():
    return f"paw's user (uid {os.geteuid()})" if hasattr(os, "geteuid") else "paw's user"


def _verbs(need):
    return "read and write" if need & os.R_OK else "write into"


def _rights(need):
    return "read, write and execute" if need & os.R_OK else "write and execute"
