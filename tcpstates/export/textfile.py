"""The file ``export --textfile`` writes: always whole, only over a regular file, only where asked.

Root writes it, often every few seconds for months, into a directory other users may be able
to write to. So:

- The text goes into a new temporary file in the target's directory (``O_CREAT|O_EXCL|
  O_NOFOLLOW``, a random name not ending in .prom, so node_exporter never reads it), is
  flushed to disk, then renamed over the target: a reader sees the previous file or the next,
  never part of one, and a full disk leaves the previous file as it was.
- An existing target that is not a regular file is refused, never replaced: a device such as
  /dev/full, a FIFO, a directory, a socket, or a symbolic link. A symlink is refused whoever
  made it (give the path it points to): root would otherwise destroy, or be tempted to follow,
  a link another user planted.
- The directory is reached one component at a time, and a symlink on the way is followed only
  if root or the user running tcpstates owns it: what the kernel's fs.protected_symlinks does
  in sticky world-writable directories, applied everywhere, since that sysctl may be off.
  Every later step (the check, the temporary file, the rename, the sync) is made relative to
  that one open directory, so swapping a component of the path meanwhile changes nothing.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import signal
import stat

from tcpstates.model.errors import TcpstatesError

# node_exporter runs as its own user and must be able to read the file.
TEXTFILE_MODE = 0o644
NOT_REGULAR = {
    stat.S_IFLNK: "a symbolic link (give the path it points to)",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFIFO: "a FIFO",
    stat.S_IFDIR: "a directory",
    stat.S_IFSOCK: "a socket",
}
_DIRECTORY = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
MAX_LINKS = 40  # as the kernel's own limit on symlinks in one lookup
_TEMPORARY = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


class TextfileError(TcpstatesError):
    """The metrics file cannot, or must not, be written."""


def write_atomically(path: str, text: str) -> None:
    """Replace ``path`` with a file holding ``text``, as the module says, or raise
    TextfileError with the reason in one line and ``path`` as it was."""
    directory, name = os.path.split(os.path.abspath(path))
    try:
        dir_fd = open_directory(directory)
        try:
            _refuse_unless_regular(dir_fd, name)
            _replace(dir_fd, name, text)
        finally:
            os.close(dir_fd)
    except TextfileError as e:
        raise TextfileError(f"cannot write {path}: {e}") from None
    except OSError as e:
        raise TextfileError(f"cannot write {path}: {e.strerror}") from None


def open_directory(directory: str) -> int:
    """A descriptor of the absolute ``directory``, reached as the module says.

    A symlink that may be followed is read and its target walked the same way, component by
    component, so a root-owned link into a directory where another user planted a link of
    their own gains that user nothing.
    """
    fd = os.open("/", _DIRECTORY)
    parts = [part for part in reversed(directory.split("/")) if part]  # a stack, next on top
    walked: list[str] = []
    links = 0
    try:
        while parts:
            part = parts.pop()
            walked.append(part)
            try:
                parent, fd = fd, os.open(part, _DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
                os.close(parent)
                continue
            except NotADirectoryError:  # a file, or a symlink: O_NOFOLLOW|O_DIRECTORY is ENOTDIR
                target = _followable_link(fd, part, "/" + "/".join(walked))
            links += 1
            if links > MAX_LINKS:
                raise OSError(errno.ELOOP, os.strerror(errno.ELOOP))
            parts.extend(p for p in reversed(target.split("/")) if p)
            walked.pop()  # the link: what it names is walked instead
            if target.startswith("/"):
                walked.clear()
                os.close(fd)
                fd = os.open("/", _DIRECTORY)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _followable_link(dir_fd: int, name: str, shown: str) -> str:
    """The target of the symlink ``name``, if root or we own it; else TextfileError. Anything
    else than a symlink (a regular file in the way) is ENOTDIR."""
    found = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    if not stat.S_ISLNK(found.st_mode):
        raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR))
    if found.st_uid not in (0, os.geteuid()):
        raise TextfileError(
            f"{shown} is a symbolic link owned by uid {found.st_uid}; only links owned by root"
            " or by the user running tcpstates are followed"
        )
    return os.readlink(name, dir_fd=dir_fd)


def _refuse_unless_regular(dir_fd: int, name: str) -> None:
    try:
        mode = os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode
    except FileNotFoundError:
        return  # a new file
    if not stat.S_ISREG(mode):
        kind = NOT_REGULAR.get(stat.S_IFMT(mode), "a special file")
        raise TextfileError(f"{kind}, not a regular file; it is left as it is")


# A stop: a service manager's SIGTERM (cli/signals.py makes it a KeyboardInterrupt) or Ctrl-C.
_STOPS = {signal.SIGTERM, signal.SIGINT}


def _replace(dir_fd: int, name: str, text: str) -> None:
    """Write ``text`` to a temporary file and rename it over ``name``, with stops held.

    A stop raised between the temporary's creation and the ``try`` that removes it on failure
    left it behind (now and then, at --interval 0.001). Held, a stop takes effect once the
    file is in place: a stop waits for one write at the most.
    """
    held = signal.pthread_sigmask(signal.SIG_BLOCK, _STOPS)
    try:
        _write_and_rename(dir_fd, name, text)
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, held)


def _write_and_rename(dir_fd: int, name: str, text: str) -> None:
    temporary, fd = _create_temporary(dir_fd, name)
    try:
        try:
            data = memoryview(text.encode())
            while data:
                data = data[os.write(fd, data) :]
            os.fchmod(fd, TEXTFILE_MODE)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temporary, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary, dir_fd=dir_fd)
        raise
    with contextlib.suppress(OSError):  # makes the rename durable; some file systems cannot
        os.fsync(dir_fd)


def _create_temporary(dir_fd: int, name: str) -> tuple[str, int]:
    for _ in range(100):
        temporary = f".{name}.{secrets.token_hex(8)}.tmp"
        with contextlib.suppress(FileExistsError):
            return temporary, os.open(temporary, _TEMPORARY, 0o600, dir_fd=dir_fd)
    raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST))
