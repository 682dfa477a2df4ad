"""Durable moves between folders that may sit on different file systems, and the facts about a
file paw checks before it removes or hands one on.

Synology shared folders are separate btrfs subvolumes, so rename() between them fails with EXDEV.
`move` then copies under a partial name, fsyncs, renames into place and only then removes the
source, and only if the source is provably the file that was copied (its identity: type, inode,
size, mtime and ctime of every file); at every instant one complete copy exists under a final
name. Special files (FIFOs, sockets, devices) are never opened or copied. Nothing is ever moved
over an existing name. Paths are only ever handed to system calls, never to a shell.
"""

import errno
import os
import secrets
import stat

from .durable import PARTIAL_PREFIX, fsync_dir
from .errors import SourceChanged

NAME_MAX = 255
REASON_SUFFIX = ".reason.txt"
# Labels the kernel's security modules put on every file; they say nothing about the slide and
# an unprivileged process cannot remove them.
LSM_ATTRIBUTES = ("security.selinux", "security.apparmor", "security.SMACK64", "security.ima",
                  "security.evm")
COPY_BLOCK = 8 << 20
FICLONE = 0x40049409  # _IOW(0x94, 9, int), linux/fs.h: the target shares the source's extents
# What FICLONE answers where it cannot share extents (not an error of the copy).
NO_REFLINK = {errno.EOPNOTSUPP, errno.ENOTTY, errno.EXDEV, errno.EINVAL, errno.ENOSYS, errno.EPERM,
              errno.EBADF, errno.ETXTBSY}
# What an admin does when paw's user cannot edit, rename or re-permission the technicians' files.
OWNERSHIP_FIX = ("run paw as the shares' owner, or let Samba create files group-writable: "
                 "create mask = 0660 / force group")


# --- ownership ---------------------------------------------------------------------------------

def user_name(uid):
    """A user's name for a message ("uid N" when the system has none)."""
    import pwd
    try:
        return pwd.getpwuid(uid).pw_name
    except (KeyError, OverflowError):
        return f"uid {uid}"


def paws_user():
    """paw's user as a message names it: `paw's user paw (uid 999)`."""
    uid = os.geteuid()
    return f"paw's user {user_name(uid)} (uid {uid})"


def ownership(path):
    """`owner tech, mode 0644` of a file or folder (lstat; '' when it cannot be read)."""
    try:
        info = os.lstat(path)
    except OSError:
        return ""
    return f"owner {user_name(info.st_uid)}, mode {stat.S_IMODE(info.st_mode):04o}"


# --- identity ----------------------------------------------------------------------------------

def _kind(mode):
    if stat.S_ISREG(mode):
        return "f"
    if stat.S_ISDIR(mode):
        return "d"
    if stat.S_ISLNK(mode):
        return "l"
    return "s"  # FIFO, socket, character or block device


def special_kind(mode):
    """What a special file is, for people; None for a file, folder or symbolic link."""
    for test, name in ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device")):
        if test(mode):
            return name
    return None


def identity(path):
    """{relative path: [kind, inode, size, mtime_ns, ctime_ns]} of a file, link or folder tree
    ("" is `path` itself), never following links. Folders carry only kind and inode: their
    times change as entries are removed. Enough to prove later that a file is still the one
    paw saw: a file saved again under the same name differs in ctime at least."""
    found = {}

    def note(rel, st):
        kind = _kind(st.st_mode)
        found[rel] = [kind, st.st_ino, 0, 0, 0] if kind == "d" else \
            [kind, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns]
        return kind

    if note("", os.lstat(path)) == "d":
        stack = [("", path)]
        while stack:
            rel, folder = stack.pop()
            with os.scandir(folder) as entries:
                for entry in entries:
                    sub = f"{rel}/{entry.name}" if rel else entry.name
                    if note(sub, entry.stat(follow_symlinks=False)) == "d":
                        stack.append((sub, entry.path))
    return found


def specials(facts):
    """The relative paths in an identity that are special files."""
    return [rel for rel, value in facts.items() if value[0] == "s"]


def remove_if_same(path, recorded):
    """Remove every file of `path` that is still exactly as `recorded` (an identity), and the
    folders left empty; what differs (a scan saved again under the same name) stays. True if
    nothing is left."""
    try:
        current = identity(path)
    except FileNotFoundError:
        return True
    for rel in sorted(current, key=lambda r: (r.count("/"), r), reverse=True):
        full = os.path.join(path, rel) if rel else path
        if current[rel][0] == "d":
            if recorded.get(rel, [None])[0] == "d":
                try:
                    os.rmdir(full)
                except OSError:
                    pass  # something not recorded is inside: it stays
        elif recorded.get(rel) == current[rel]:
            os.unlink(full)
    fsync_dir(os.path.dirname(path) or ".")
    return not os.path.lexists(path)


# --- moving ------------------------------------------------------------------------------------

def move(src, dst, partial=None, expect=None, on_copied=None):
    """Move a file, directory or symlink to `dst`, which must not exist, durably.

    Across file systems (EXDEV) the copy is built at `partial` (default: a fresh hidden name
    beside `dst`; callers journal theirs so that a crash leaves nothing they cannot clean),
    `on_copied(partial)` runs once the copy is complete and durable and before it takes its
    final name (so a caller can journal the copy's inode), and the source is removed only if
    it is still what was copied. With `expect` (an identity journaled earlier) the move is
    refused (SourceChanged) if the source no longer matches it.
    """
    if os.path.lexists(dst):
        raise FileExistsError(errno.EEXIST, "destination exists", dst)
    if expect is not None and identity(src) != expect:
        raise SourceChanged("the file changed while paw was moving it")
    try:
        rename_noreplace(src, dst)
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
        _copy_then_remove(src, dst, partial or default_partial(dst), on_copied)
        return
    fsync_dir(os.path.dirname(dst) or ".")
    fsync_dir(os.path.dirname(src) or ".")


def default_partial(dst):
    return os.path.join(os.path.dirname(dst) or ".", PARTIAL_PREFIX + secrets.token_hex(8))


def _copy_then_remove(src, dst, partial, on_copied):
    before = identity(src)
    odd = specials(before)
    if odd:
        raise OSError(errno.EINVAL, "not a regular file, folder or link (never copied)",
                      os.path.join(src, odd[0]))
    remove(partial)
    _copy_tree(src, partial)
    if identity(src) != before:
        remove(partial)
        raise SourceChanged("the file changed while paw was moving it")
    if on_copied is not None:
        on_copied(partial)
    rename_noreplace(partial, dst)
    fsync_dir(os.path.dirname(dst) or ".")  # the copy's name is durable before the source goes
    remove_if_same(src, before)


def copy_tree(src, dst):
    """A file, link or folder tree copied to `dst` (which must not exist) as `move` copies it
    across file systems (below)."""
    _copy_tree(src, dst)


def _copy_tree(src, dst):
    """Copy without extended attributes or ACLs (they would carry Samba streams and macOS
    metadata along), holes kept as holes; every file and folder fsynced."""
    info = os.lstat(src)
    if stat.S_ISLNK(info.st_mode):
        os.symlink(os.readlink(src), dst)
    elif stat.S_ISDIR(info.st_mode):
        os.mkdir(dst, 0o700)
        with os.scandir(src) as entries:
            names = [e.name for e in entries]
        for name in names:
            _copy_tree(os.path.join(src, name), os.path.join(dst, name))
        os.chmod(dst, stat.S_IMODE(info.st_mode) & 0o777)
        os.utime(dst, ns=(info.st_atime_ns, info.st_mtime_ns), follow_symlinks=False)
        fsync_dir(dst)
    else:
        copy_file(src, dst)


def copy_file(src, dst):
    """Copy a regular file's bytes to a new file `dst`, with its mode and times but no extended
    attributes; fsynced. Where the file system can (btrfs, as Synology's shared folders are, and
    XFS), the copy shares the source's extents (a reflink: instant, whatever the size; a later
    write to either is copy-on-write); elsewhere the bytes are copied with copy_file_range,
    skipping holes (SEEK_DATA/SEEK_HOLE). A special file is refused without being read (a FIFO
    would block, a character device never ends)."""
    from .sparse import data_segments

    source = os.open(src, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        info = os.fstat(source)
        if not stat.S_ISREG(info.st_mode):
            raise OSError(errno.EINVAL, "not a regular file (never copied)", src)
        target = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            if not reflink(source, target):
                for start, end in data_segments(source, 0, info.st_size):
                    _copy_range(source, target, start, end)
                os.ftruncate(target, info.st_size)
            os.fchmod(target, stat.S_IMODE(info.st_mode) & 0o777)
            os.utime(target, ns=(info.st_atime_ns, info.st_mtime_ns))
            os.fsync(target)
        finally:
            os.close(target)
    finally:
        os.close(source)
    return dst


def reflink(source, target):
    """Make the open file `target` (empty) share every extent of `source` (ioctl FICLONE); False,
    with `target` left empty, where the file system cannot (ext4, two file systems, NFS, SMB)."""
    import fcntl
    try:
        fcntl.ioctl(target, FICLONE, source)
    except OSError as exc:
        if exc.errno not in NO_REFLINK:
            raise
        return False
    return True


def _copy_range(source, target, start, end):
    position = start
    while position < end:
        length = min(COPY_BLOCK, end - position)
        try:
            done = os.copy_file_range(source, target, length, position, position)
        except OSError as exc:
            if exc.errno not in (errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP, errno.EPERM):
                raise
            done = 0
        if done == 0:  # not supported between these file systems, or past EOF: plain copy
            block = os.pread(source, length, position)
            if not block:
                return
            done = os.pwrite(target, block, position)
        position += done


def rename_noreplace(src, dst):
    """rename() that fails with EEXIST instead of replacing `dst` (renameat2 RENAME_NOREPLACE);
    where the kernel or file system lacks it, a check just before a plain rename."""
    result = _renameat2(src, dst)
    if result is None:
        if os.path.lexists(dst):
            raise FileExistsError(errno.EEXIST, "destination exists", dst)
        os.rename(src, dst)


_RENAMEAT2 = []


def _renameat2(src, dst):
    """True when done; None when renameat2 is not available here."""
    if not _RENAMEAT2:
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        _RENAMEAT2.append((ctypes, getattr(libc, "renameat2", None)))
    ctypes, call = _RENAMEAT2[0]
    if call is None:
        return None
    at_fdcwd, rename_noreplace_flag = -100, 1
    if call(at_fdcwd, os.fsencode(src), at_fdcwd, os.fsencode(dst), rename_noreplace_flag) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP):  # the file system lacks the flag
        return None
    raise OSError(code, os.strerror(code), src, None, dst)


# --- around the file ---------------------------------------------------------------------------

def strip_attributes(path):
    """Remove every extended attribute (Samba's alternate data streams and DOS attributes,
    macOS metadata such as kMDItemWhereFroms, POSIX ACLs) from a file or folder tree, never
    following links. Returns how many could not be removed (security-module labels aside)."""
    left = 0
    entries = [path]
    if os.path.isdir(path) and not os.path.islink(path):
        entries += [os.path.join(root, n) for root, dirs, files in os.walk(path) for n in dirs + files]
    for entry in entries:
        try:
            names = os.listxattr(entry, follow_symlinks=False)
        except OSError as exc:
            if exc.errno in (errno.ENOTSUP, errno.EOPNOTSUPP):
                continue
            raise
        for name in names:
            if name in LSM_ATTRIBUTES:
                continue
            try:
                os.removexattr(entry, name, follow_symlinks=False)
            except OSError:
                left += 1
    return left


def remove(path):
    """Remove a file, symlink or directory tree if it exists."""
    import shutil
    if os.path.islink(path) or (os.path.lexists(path) and not os.path.isdir(path)):
        os.unlink(path)
    elif os.path.isdir(path):
        shutil.rmtree(path)


# --- names -------------------------------------------------------------------------------------

def free_names(folder, names, companions=()):
    """`names` in `folder`, or all with one shared `-2`, `-3`, ... suffix before the extension
    if any is taken: paw never overwrites, and a slide's members (X.mrxs and X/) stay paired.
    `companions` are functions of the first name giving files paw will add beside it (the
    reason file): they must be free too."""
    suffix, n = "", 1
    while True:
        chosen = [_suffixed(x, suffix) for x in names]
        wanted = chosen + [make(chosen[0]) for make in companions]
        if not any(os.path.lexists(os.path.join(folder, x)) for x in wanted):
            return chosen
        n += 1
        suffix = f"-{n}"


def free_name(folder, name):
    return free_names(folder, [name])[0]


def reason_name(name):
    """The reason file beside a quarantined slide: `NAME.reason.txt`, or, when that would pass
    the 255-byte name limit, NAME cut short and marked `~`."""
    raw = os.fsencode(name)
    if len(raw) + len(REASON_SUFFIX) <= NAME_MAX:
        return name + REASON_SUFFIX
    keep = NAME_MAX - len(REASON_SUFFIX) - 1
    return os.fsdecode(raw[:keep]) + "~" + REASON_SUFFIX


def _suffixed(name, suffix):
    stem, ext = split_ext(name)
    if not ext and len(stem) > 2 and stem[0] == stem[-1] == "_":  # a VSI folder `_X_` pairs with X.vsi
        return f"{stem[:-1]}{suffix}_"
    return f"{stem}{suffix}{ext}"


def split_ext(name):
    stem, ext = os.path.splitext(name)
    return (stem, ext) if stem else (name, "")
