"""``--save DIR``: this host's socket tables and the settings doctor reads, all or nothing.

Root runs it, often into a directory anyone may write to (/tmp), so nothing another user put
there is written through or followed. The capture is built in a fresh directory next to DIR
that only its owner may enter (mkdir 0700; files O_CREAT|O_EXCL|O_NOFOLLOW; every step relative
to a directory descriptor), synced, and renamed into place in one step. DIR may be missing or an
empty directory (the rename replaces it). A DIR holding anything is refused, unless ``replace``
is given and it holds nothing but a capture's ``net`` and ``sys``: then the two are swapped in one
step (renameat2 RENAME_EXCHANGE) and the old one is removed through descriptors, a symlink in it
unlinked, never followed. DIR as a symlink is refused: whoever made it chose where it points.
Any failure, a full disk included, removes the new directory: no DIR, no temporary directory,
and a replaced capture as it was.
"""

from __future__ import annotations

import ctypes
import errno
import os
import secrets
import stat
from collections.abc import Iterator
from contextlib import contextmanager

from tcpstates.model.errors import SourceError
from tcpstates.sources.kernel import COUNTER_FILES, SETTINGS
from tcpstates.sources.procfs import TABLES

# What --save copies, relative to /proc, laid out as there: what --from and doctor read.
SAVED = (
    *(f"net/{name}" for name, _, _ in TABLES),
    *COUNTER_FILES,
    *(f"sys/{setting.replace('.', '/')}" for setting in SETTINGS),
)
CAPTURE_TOP = frozenset(path.partition("/")[0] for path in SAVED)  # net, sys
DEPTH = max(path.count("/") for path in SAVED) + 1  # deeper than this is no capture of ours
CHUNK = 1 << 20
RENAME_EXCHANGE = 2  # include/uapi/linux/fs.h
_DIRECTORY = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_NEW_FILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


def save_capture(destination: str, proc: str = "/proc", replace: bool = False) -> int:
    """Save the capture to ``destination``; the number of files it holds."""
    parent, name = _split(destination)
    try:
        with _directory_fd(parent, follow=True) as parent_fd:
            replacing = _check_destination(parent_fd, name, destination, replace)
            temp = f".{name[:200]}.tcpstates-{secrets.token_hex(8)}"
            os.mkdir(temp, 0o700, dir_fd=parent_fd)  # fails on anything already there
            try:
                files = _write_capture(parent_fd, temp, proc)
                _put_in_place(parent_fd, temp, name, replacing, destination)
            except BaseException:
                _remove_tree(parent_fd, temp)
                raise
            if replacing:  # temp holds the old capture now
                _remove_old(parent_fd, temp, os.path.join(parent, temp), destination)
            os.fsync(parent_fd)
    except OSError as e:
        raise SourceError(f"cannot save to {destination}: {e.strerror}") from None
    return files


def _split(destination: str) -> tuple[str, str]:
    parent, name = os.path.split(destination.rstrip("/") or "/")
    if name in ("", ".", ".."):
        raise SourceError(f"--save {destination}: give the directory by its name (--save DIR)")
    return parent or ".", name


@contextmanager
def _directory_fd(path: str, dir_fd: int | None = None, follow: bool = False) -> Iterator[int]:
    """A directory descriptor; only DIR's parent, as the user named it, follows symlinks."""
    fd = os.open(path, _DIRECTORY & ~os.O_NOFOLLOW if follow else _DIRECTORY, dir_fd=dir_fd)
    try:
        yield fd
    finally:
        os.close(fd)


def _check_destination(parent_fd: int, name: str, destination: str, replace: bool) -> bool:
    """Whether an old capture is to be swapped out; raises where DIR must be left alone."""
    try:
        info = os.stat(name, dir_fd=parent_fd, follow_symlinks=False)
    except FileNotFoundError:
        return False
    if stat.S_ISLNK(info.st_mode):
        raise SourceError(f"--save {destination}: a symbolic link; give the directory itself")
    if not stat.S_ISDIR(info.st_mode):
        raise SourceError(f"--save {destination}: exists and is not a directory")
    with _directory_fd(name, parent_fd) as fd:
        entries = sorted(os.listdir(fd))
    if not entries:
        return False  # the rename replaces an empty directory
    if not replace:
        raise SourceError(f"--save {destination}: not empty; --replace replaces a capture")
    strangers = [entry for entry in entries if entry not in CAPTURE_TOP]
    if strangers:
        raise SourceError(
            f"--save {destination}: holds {strangers[0]!r}, which no capture has; not replacing it"
        )
    return True


def _write_capture(parent_fd: int, temp: str, proc: str) -> int:
    with _directory_fd(temp, parent_fd) as top:
        info = os.fstat(top)
        if info.st_uid != os.geteuid() or info.st_mode & 0o077:  # swapped since the mkdir
            raise SourceError(f"--save: the temporary directory {temp} is not the one made")
        written = 0
        for path in SAVED:
            try:
                source = os.open(os.path.join(proc, path), os.O_RDONLY | os.O_CLOEXEC)
            except OSError:
                continue  # IPv6 off, an older kernel without a setting: save what there is
            try:
                _copy(source, top, path)
            finally:
                os.close(source)
            written += 1
        _sync_tree(top)
    return written


def _copy(source: int, top: int, path: str) -> None:
    """Copy ``source`` to ``path`` under ``top``, making its directories, and sync it."""
    *directories, name = path.split("/")
    fds = [top]
    try:
        for directory in directories:
            try:
                os.mkdir(directory, 0o755, dir_fd=fds[-1])
            except FileExistsError:
                pass
            fds.append(os.open(directory, _DIRECTORY, dir_fd=fds[-1]))
        out = os.open(name, _NEW_FILE, 0o644, dir_fd=fds[-1])
        try:
            while chunk := os.read(source, CHUNK):
                view = memoryview(chunk)
                while view:
                    view = view[os.write(out, view) :]
            os.fsync(out)
        finally:
            os.close(out)
    finally:
        for fd in fds[1:]:
            os.close(fd)


def _sync_tree(fd: int, depth: int = 0) -> None:
    """fsync every directory under ``fd`` and ``fd`` itself: their entries are on disk too."""
    for entry in os.scandir(fd):
        if entry.is_dir(follow_symlinks=False) and depth < DEPTH:
            with _directory_fd(entry.name, fd) as child:
                _sync_tree(child, depth + 1)
    os.fsync(fd)


def _put_in_place(parent_fd: int, temp: str, name: str, replacing: bool, destination: str) -> None:
    if replacing:
        _exchange(parent_fd, temp, name)
        return
    try:
        os.rename(temp, name, src_dir_fd=parent_fd, dst_dir_fd=parent_fd)
    except OSError as e:
        # Renaming a directory never goes through a symlink or over a file or a directory
        # with something in it: what was checked as missing or empty is not any more.
        if e.errno in (errno.ENOTEMPTY, errno.EEXIST, errno.ENOTDIR):
            raise SourceError(f"--save {destination}: appeared or filled while saving") from None
        raise


def _remove_old(parent_fd: int, temp: str, shown: str, destination: str) -> None:
    try:
        _remove_tree(parent_fd, temp)
    except OSError as e:
        raise SourceError(
            f"saved {destination}; the capture it replaced, moved to {shown}, could not be"
            f" removed: {e.strerror}"
        ) from None


def _exchange(parent_fd: int, temp: str, name: str) -> None:
    """Swap ``temp`` and ``name`` in one step; where the kernel or C library cannot, move the
    old one aside and the new one in, and put the old one back if the second step fails."""
    renameat2 = getattr(ctypes.CDLL(None, use_errno=True), "renameat2", None)
    if renameat2 is not None:
        renameat2.argtypes = (
            ctypes.c_int,
            ctypes.c_char_p,
            ctypes.c_int,
            ctypes.c_char_p,
            ctypes.c_uint,
        )
        if renameat2(parent_fd, temp.encode(), parent_fd, name.encode(), RENAME_EXCHANGE) == 0:
            return
        code = ctypes.get_errno()
        if code not in (errno.ENOSYS, errno.EINVAL):
            raise OSError(code, os.strerror(code))
    aside = f"{temp}-old"
    os.rename(name, aside, src_dir_fd=parent_fd, dst_dir_fd=parent_fd)
    try:
        os.rename(temp, name, src_dir_fd=parent_fd, dst_dir_fd=parent_fd)
    except OSError:
        os.rename(aside, name, src_dir_fd=parent_fd, dst_dir_fd=parent_fd)
        raise
    os.rename(aside, temp, src_dir_fd=parent_fd, dst_dir_fd=parent_fd)


def _remove_tree(dir_fd: int, name: str, depth: int = 0) -> None:
    """Remove ``name`` and all in it, through descriptors: a symlink is unlinked, not followed."""
    try:
        fd = os.open(name, _DIRECTORY, dir_fd=dir_fd)
    except FileNotFoundError:
        return
    except OSError as e:
        if e.errno not in (errno.ENOTDIR, errno.ELOOP):
            raise
        os.unlink(name, dir_fd=dir_fd)  # a file or a symlink
        return
    try:
        if depth > DEPTH:
            raise OSError(errno.ENOTEMPTY, "nested deeper than any capture")
        for entry in os.scandir(fd):
            _remove_tree(fd, entry.name, depth + 1)
    finally:
        os.close(fd)
    os.rmdir(name, dir_fd=dir_fd)
