"""Files a run writes: permissions from the umask, recognisable temporary names, a run-folder lock.

Every output is first written to a temporary file named ``.tmp-*`` in the folder of its target and
then renamed over it, so a reader never sees half a file; a save killed half-way leaves only such a
temporary, which the next run on the folder removes; a results folder (:func:`atomic_folder`) is
filled under a temporary name and swapped in whole, and what a killed run left of one is cleared
by the next.
"""
import contextlib
import errno
import logging
import math
import os
import shutil
import tempfile

from util.errors import UserError

try:
    import fcntl
except ImportError:  # not POSIX: runs are not locked
    fcntl = None

TMP_PREFIX = ".tmp-"


def _umask():
    try:
        with open("/proc/self/status") as handle:  # Linux: read without changing it
            for line in handle:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    old = os.umask(0o022)
    os.umask(old)
    return old


def file_mode():
    """The permission bits ``open()`` gives a new file: 0o666 less the process umask."""
    return 0o666 & ~_umask()


def temporary(folder, name, suffix=""):
    """``(fd, path)`` of a new temporary file ``.tmp-<name>.XXXX<suffix>`` in ``folder``."""
    return tempfile.mkstemp(dir=folder, prefix=f"{TMP_PREFIX}{name}.", suffix=suffix)


def publish(tmp, path):
    """Rename the finished temporary ``tmp`` onto ``path`` with the permissions of the umask
    (mkstemp creates files readable by their owner only)."""
    os.chmod(tmp, file_mode())
    os.replace(tmp, path)


@contextlib.contextmanager
def atomic_path(path, fsync=False):
    """``with atomic_path(path) as tmp:`` a temporary path next to ``path`` (its folder created) for
    the block to write; renamed over ``path`` (:func:`publish`) when the block succeeds, removed when
    it fails. The temporary keeps ``path``'s extension, so writers that pick the format from it
    (PIL) write the right one. ``fsync``: flush the written file to the disk before the rename, so
    that a power loss right after leaves the old file or the whole new one (checkpoints).
    UserError when nothing can be written there."""

    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    name = os.path.basename(path)
    try:
        os.makedirs(folder, exist_ok=True)
        fd, tmp = temporary(folder, name, suffix=os.path.splitext(name)[1])
    except OSError as err:
        raise UserError(f"cannot write {path} ({err.strerror}): choose an output path in a folder you may write "
                        "to") from None
    os.close(fd)
    try:
        yield tmp
        if fsync:
            fd = os.open(tmp, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        publish(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


@contextlib.contextmanager
def atomic_folder(path, fix="choose a folder you may write to"):
    """``with atomic_folder(path) as tmp:`` a new empty folder next to ``path`` (``.tmp-<name>.XXXX``)
    for the block to fill. When the block succeeds the folder replaces ``path`` as a whole (what was
    there is removed, so no file of an earlier run survives next to the new ones); when it fails or
    is interrupted the folder is removed and ``path`` is left as it was. UserError, ending with
    ``fix``, when the folder cannot be made."""

    path = os.path.abspath(os.fspath(path))
    parent, name = os.path.split(path)
    try:
        os.makedirs(parent, exist_ok=True)
        _clear_leftovers(parent, name)
        tmp, lock = _locked_folder(parent, f"{TMP_PREFIX}{name}.")
    except OSError as err:
        raise UserError(f"cannot write {path} ({err.strerror}): {fix}") from None
    try:
        yield tmp
        os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes it private
        _swap_in(tmp, path)
    finally:
        lock.release()
        if os.path.lexists(tmp):
            shutil.rmtree(tmp, ignore_errors=True)


def _locked_folder(parent, prefix):
    """``(folder, FolderLock)``: a new folder ``<prefix>XXXX`` in ``parent``, locked for as long as it
    is filled and swapped in, so that another run's :func:`_clear_leftovers` leaves it alone. A folder
    that such a run took between its creation and the lock is given up for a new one."""
    for _ in range(10):
        tmp = tempfile.mkdtemp(dir=parent, prefix=prefix)
        lock = FolderLock(tmp)
        try:
            if lock.acquire():
                return tmp, lock
        except FileNotFoundError:
            pass
    raise OSError(errno.EBUSY, "other runs keep removing the new folders")


def _swap_in(tmp, path):
    """Rename the finished folder ``tmp`` to ``path``; whatever had that name is moved aside to
    ``<tmp>.old`` first and removed after."""
    if not os.path.lexists(path):
        os.rename(tmp, path)
        return
    old = tmp + ".old"
    os.rename(path, old)
    os.rename(tmp, path)
    _remove(old)


def _remove(path):
    """Remove a folder tree, a file or a link; nothing when it is gone already."""
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            os.remove(path)


def _clear_leftovers(parent, name):
    """Deal with what an :func:`atomic_folder` for ``parent/name`` that was killed left behind: its
    unfinished ``.tmp-<name>.XXXX`` folder is removed; a swap cut between its two renames (``name``
    gone, ``.tmp-<name>.XXXX.old`` kept) is completed, since the new folder was finished by then.
    Folders still locked by a running process are left alone; without ``fcntl`` nothing is touched,
    as a running process cannot be told from a killed one."""
    if fcntl is None:
        return
    log = logging.getLogger("dmad")
    prefix = f"{TMP_PREFIX}{name}."
    for entry in sorted(os.listdir(parent)):
        tmp = os.path.join(parent, entry)
        if not entry.startswith(prefix) or entry.endswith(".old") or not os.path.isdir(tmp):
            continue
        lock = FolderLock(tmp)
        try:
            if not lock.acquire():
                continue  # a run filling it now
        except OSError:
            continue
        try:
            old = tmp + ".old"
            if os.path.lexists(old) and not os.path.lexists(os.path.join(parent, name)):
                os.rename(tmp, os.path.join(parent, name))
                log.info("completed the replacement of %s that an interrupted run had begun",
                         os.path.join(parent, name))
            else:
                shutil.rmtree(tmp, ignore_errors=True)
                log.info("removed %s, left by a run that was killed", tmp)
        finally:
            lock.release()
    for entry in os.listdir(parent):
        old = os.path.join(parent, entry)
        # an .old whose new folder is gone: the swap finished (or was completed above) but the earlier
        # results were not yet removed
        if entry.startswith(prefix) and entry.endswith(".old") and not os.path.lexists(old[:-4]):
            _remove(old)


def remove_temporaries(folder):
    """Delete the ``.tmp-*`` files under ``folder`` (left by a save that was killed); returns their paths."""
    removed = []
    for base, dirs, names in os.walk(folder):
        for name in names:
            if name.startswith(TMP_PREFIX):
                path = os.path.join(base, name)
                try:
                    os.remove(path)
                    removed.append(path)
                except FileNotFoundError:
                    pass
    return removed


_HELD = set()  # locks this process holds, dropped by release_locks() when an entry point returns


def release_locks():
    """Drop every FolderLock this process holds (the entry points call it when their main returns)."""
    for lock in list(_HELD):
        lock.release()


class FolderLock:
    """An exclusive ``flock`` on a folder, held until :meth:`release` (or :func:`release_locks`).

    The kernel drops it when the process ends, however it ends, so a killed run never leaves a
    lock behind; no file is created for it.
    """

    def __init__(self, folder):
        self.folder = folder
        self.fd = None

    def acquire(self):
        """True when the lock is now held, False when another process holds it."""
        if fcntl is None or self.fd is not None:
            return True
        fd = os.open(self.folder, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            os.close(fd)
            if err.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                return False
            raise
        self.fd = fd
        _HELD.add(self)
        return True

    def release(self):
        if self.fd is not None:
            os.close(self.fd)  # closing the descriptor drops the flock
            self.fd = None
        _HELD.discard(self)

    def __del__(self):
        self.release()


def check_writable_folder(path, option):
    """UserError unless ``path`` is, or can be created as, a folder this process may write.

    ``option`` names the command-line option the path came from, for the message. Nothing is created.
    """

    path = os.path.abspath(os.path.expanduser(path))
    probe = path
    while not os.path.lexists(probe):
        parent = os.path.dirname(probe)
        if parent == probe:
            break
        probe = parent
    if os.path.lexists(probe) and not os.path.isdir(probe):
        raise UserError(f"{option}: {probe} is a file, not a folder: give a folder path (or move the file)")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise UserError(f"{option}: folder {probe} is not writable: choose a folder you may write to, or fix its "
                        "permissions")


def check_writable_file(path, option):
    """UserError unless ``path`` can be written as a file: it is not a folder and its folder is, or
    can be created as, one this process may write (:func:`check_writable_folder`). Nothing is created."""

    if os.path.isdir(path):
        raise UserError(f"{option} {path} is a folder: give a file name")
    check_writable_folder(os.path.dirname(os.path.abspath(os.path.expanduser(path))), option)


def finite_or_null(value):
    """``value`` (nested dicts, lists and tuples) with every NaN or infinite float (a score of degenerate
    statistics) as None, so that a JSON file written from it is strict JSON (``null``) for every parser."""
    if isinstance(value, dict):
        return {k: finite_or_null(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite_or_null(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
