"""Durable moves between folders that may sit on different file systems.

Synology shared folders are separate btrfs subvolumes, so rename() between them fails with EXDEV.
`move` then copies under a hidden partial name, fsyncs, renames into place and only then removes
the source: at every instant one complete copy exists under a final name. Paths are only ever
handed to system calls, never to a shell.
"""

import errno
import os
import shutil

from .durable import fsync_dir, fsync_file, partial_path


def move(src, dst):
    """Move a file, directory or symlink to `dst` (which must not exist), durably."""
    if os.path.lexists(dst):
        raise FileExistsError(errno.EEXIST, "destination exists", dst)
    try:
        os.rename(src, dst)
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
        _copy_then_remove(src, dst)
    fsync_dir(os.path.dirname(dst) or ".")
    fsync_dir(os.path.dirname(src) or ".")


def _copy_then_remove(src, dst):
    partial = partial_path(dst)
    remove(partial)
    if os.path.islink(src):
        os.symlink(os.readlink(src), partial)
    elif os.path.isdir(src):
        shutil.copytree(src, partial, symlinks=True, copy_function=_copy_file)
        for root, dirs, _files in os.walk(partial):
            for d in dirs:
                fsync_dir(os.path.join(root, d))
        fsync_dir(partial)
    else:
        _copy_file(src, partial)
    os.rename(partial, dst)
    fsync_dir(os.path.dirname(dst) or ".")
    remove(src)


def _copy_file(src, dst):
    shutil.copyfile(src, dst, follow_symlinks=False)  # sendfile() on Linux
    shutil.copystat(src, dst, follow_symlinks=False)
    fsync_file(dst)
    return dst


def remove(path):
    """Remove a file, symlink or directory tree if it exists."""
    if os.path.islink(path) or os.path.isfile(path):
        os.unlink(path)
    elif os.path.isdir(path):
        shutil.rmtree(path)


def free_names(folder, names):
    """`names` in `folder`, or all with one shared `-2`, `-3`, ... suffix before the extension
    if any is taken: paw never overwrites, and a slide's members (X.mrxs and X/) stay paired."""
    suffix, n = "", 1
    while any(os.path.lexists(os.path.join(folder, _suffixed(x, suffix))) for x in names):
        n += 1
        suffix = f"-{n}"
    return [_suffixed(x, suffix) for x in names]


def free_name(folder, name):
    return free_names(folder, [name])[0]


def _suffixed(name, suffix):
    stem, ext = split_ext(name)
    if not ext and len(stem) > 2 and stem[0] == stem[-1] == "_":  # a VSI folder `_X_` pairs with X.vsi
        return f"{stem[:-1]}{suffix}_"
    return f"{stem}{suffix}{ext}"


def split_ext(name):
    stem, ext = os.path.splitext(name)
    return (stem, ext) if stem else (name, "")
