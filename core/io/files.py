"""Output files that are complete or absent: temporary name, verification, then rename.

Every output of the core is written through :class:`AtomicFile` (or its raster
form :class:`core.io.RasterWriter`):

1. the file is written under a temporary name in its destination folder,
   ``.<stem>.<host>~<pid>~<random>.partial<ext>``, with its sidecars (``.qml``
   style) under the same temporary stem;
2. it is flushed to disk (fsync) and *verified* by reading it back (rasters:
   every written window, compared by checksum; other files: a reader of their
   format) — a full disk that GDAL only reports as a warning is caught here;
3. sidecars are renamed first, the file itself last, so a file under its final
   name is always complete.

Any failure removes the temporary file and its sidecars and raises
:class:`core.errors.UserInputError` ("No space left on <folder>: about N MB
needed" for a full disk). Several outputs of one run form an :class:`OutputSet`:
all are verified before any is renamed, and a failure removes them all.

Temporary files carry the host and process id of their writer, so the next run
recognises those of a run that was killed (:func:`remove_stale_temporaries`)
and removes them, never those of a run still going on.
"""
from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
import socket
import uuid
from typing import Callable, Iterator, List, Optional, Sequence

from ..errors import Cancelled, UserInputError
from .styles import style_path

TEMP_MARK = ".partial"
#: Sidecar suffixes that belong to a file (GDAL's and QGIS's); removed with it.
SIDECAR_SUFFIXES = (".aux.xml", ".msk", ".ovr")
#: A folder with less free space than this after a write failure counts as full.
_FULL_MARGIN_BYTES = 1 << 20
#: DEFLATE on float images rarely shrinks them more than this: the early free-space check
#: refuses a compressed output only when even this much smaller it would not fit.
_BEST_COMPRESSION = 20.0
_HOST = re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname() or "host")[:40] or "host"
_TEMP_PATTERN = re.compile(r"^\.(?P<stem>.+)\.(?P<host>[A-Za-z0-9-]+)~(?P<pid>\d+)~[0-9a-f]+\.(partial|probe)")
#: Temporary names of earlier versions (tempfile, no writer id): always stale.
_LEGACY_TEMP_PATTERN = re.compile(r"^\.(.+\.[A-Za-z0-9_]{8}\.partial|pyramid_[A-Za-z0-9_]{8}$|s1grdtoard-[A-Za-z0-9_]{8}$)")


# --------------------------------------------------------------------------- names


def temporary_name(path: str, kind: str = "partial") -> str:
    """A temporary sibling of ``path`` that names this host and process."""
    folder, name = os.path.split(os.path.abspath(path))
    stem, ext = _split_ext(name)
    token = f"{_HOST}~{os.getpid()}~{uuid.uuid4().hex[:8]}"
    return os.path.join(folder, f".{stem}.{token}.{kind}{ext}")


def _split_ext(name: str):
    stem, ext = os.path.splitext(name)
    return stem, ext


def sidecar_paths(path: str) -> List[str]:
    """The sidecar files of ``path``: its style (.qml) and GDAL's auxiliary files."""
    stem = os.path.splitext(path)[0]
    return [stem + ".qml"] + [path + suffix for suffix in SIDECAR_SUFFIXES] + \
        [path + suffix for suffix in ("-journal", "-wal", "-shm")]


def pid_alive(pid: int) -> bool:
    """True when a process with this id runs on this host (never signals it)."""
    if os.name == "nt":
        return _windows_pid_alive(pid)
    try:
        os.kill(pid, 0)  # signal 0: existence check only (on Windows os.kill would terminate it)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _windows_pid_alive(pid: int) -> bool:
    import ctypes

    query_limited_information, still_active, access_denied = 0x1000, 259, 5
    kernel32 = ctypes.windll.kernel32
    handle = kernel32.OpenProcess(query_limited_information, False, int(pid))
    if not handle:
        return ctypes.GetLastError() == access_denied  # it exists, but belongs to someone else
    try:
        code = ctypes.c_ulong()
        return not kernel32.GetExitCodeProcess(handle, ctypes.byref(code)) or code.value == still_active
    finally:
        kernel32.CloseHandle(handle)


def is_stale_temporary(name: str) -> bool:
    """True for a temporary name (file or folder) left by a writer that no longer runs."""
    match = _TEMP_PATTERN.match(name)
    if match:
        return match.group("host") == _HOST and not pid_alive(int(match.group("pid")))
    return bool(_LEGACY_TEMP_PATTERN.match(name))


def remove_stale_temporaries(folder: str, log: Optional[Callable[[str], None]] = None) -> List[str]:
    """Remove the temporary files and folders of killed runs in ``folder``; return their paths."""
    removed = []
    try:
        names = os.listdir(folder)
    except OSError:
        return removed
    for name in sorted(names):
        if not name.startswith(".") or not is_stale_temporary(name):
            continue
        path = os.path.join(folder, name)
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                os.remove(path)
        if not os.path.lexists(path):
            removed.append(path)
            if log is not None:
                log(f"Removed '{name}', left in '{folder}' by an interrupted run.")
    return removed


@contextlib.contextmanager
def temporary_folder(near: str, prefix: str) -> Iterator[str]:
    """A scratch folder next to ``near`` (a folder, created when missing), named so that a killed
    run's is recognised. Folders created for it are removed again when nothing else was put there."""
    created = _first_missing_ancestor(near)
    path = temporary_name(os.path.join(near, prefix), kind="partial")
    os.makedirs(path)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
        folder = os.path.abspath(near)
        while created is not None and folder.startswith(created):
            with contextlib.suppress(OSError):
                os.rmdir(folder)  # only when empty: an output written there meanwhile keeps it
            if folder == created:
                break
            folder = os.path.dirname(folder)


# --------------------------------------------------------------------------- folders


def ensure_writable_dir(folder: str) -> str:
    """Create ``folder`` if needed and check that files can be written in it (a folder this call
    created is removed again when the check fails)."""
    folder = os.path.abspath(folder)
    blocking = _file_in_the_way(folder)
    if blocking is not None:
        raise UserInputError(f"Output folder '{folder}' cannot be made: '{blocking}' is a file, not a folder. "
                             "Choose a folder (or a new folder name).")
    created = _first_missing_ancestor(folder)
    try:
        os.makedirs(folder, exist_ok=True)
        probe = temporary_name(os.path.join(folder, "write-test"), kind="probe")
        with open(probe, "w"):
            pass
        os.remove(probe)
    except OSError as exc:
        if created is not None:
            shutil.rmtree(created, ignore_errors=True)
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise UserInputError(f"No space left on '{folder}'. Free some space or choose another output "
                                 "folder; nothing was written.") from exc
        raise UserInputError(
            f"Output folder '{folder}' is not writable ({exc.strerror or exc}). "
            "Choose a folder you have write permission for."
        ) from exc
    return folder


def _file_in_the_way(folder: str) -> Optional[str]:
    """The file (not folder) at ``folder`` or at one of its ancestors, or None."""
    while True:
        if os.path.exists(folder):
            return None if os.path.isdir(folder) else folder
        parent = os.path.dirname(folder)
        if parent == folder:
            return None
        folder = parent


def _first_missing_ancestor(folder: str) -> Optional[str]:
    """The outermost folder of ``folder``'s path that does not exist yet (None if it exists)."""
    folder = os.path.abspath(folder)
    missing = None
    while not os.path.isdir(folder):
        missing = folder
        parent = os.path.dirname(folder)
        if parent == folder:
            break
        folder = parent
    return missing


@contextlib.contextmanager
def output_folder(folder: str, keep_on_failure: bool = False,
                  log: Optional[Callable[[str], None]] = None) -> Iterator[str]:
    """Create (if needed) and yield the absolute output ``folder``; stale temporaries in it are
    removed. If the body fails and this call created the folder, it is removed again with
    everything in it — with ``keep_on_failure`` (resumable batches) only when it holds no file."""
    created = _first_missing_ancestor(folder)
    folder = ensure_writable_dir(folder)
    remove_stale_temporaries(folder, log)
    try:
        yield folder
    except BaseException:
        if created is not None and (not keep_on_failure or _only_empty_dirs(created)):
            shutil.rmtree(created, ignore_errors=True)
        raise


# --------------------------------------------------------------------------- errors


def free_bytes(folder: str) -> Optional[int]:
    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return None


def _megabytes(count: float) -> str:
    """'12', '1,234' or '0.48' (MB); '0' for nothing."""
    if count <= 0:
        return "0"
    return f"{count / 1e6:,.0f}" if count >= 1e6 else f"{count / 1e6:.2g}"


def _errno_in_chain(exc: BaseException) -> Optional[int]:
    """The OS error number behind ``exc`` (GDAL's own error classes carry GDAL numbers: ignored)."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        number = exc.errno if isinstance(exc, OSError) else None
        if isinstance(number, int) and number:
            return number
        text = str(exc)
        if "No space left on device" in text:
            return errno.ENOSPC
        if "File too large" in text:
            return errno.EFBIG
        exc = exc.__cause__ or exc.__context__
    return None


def _file_size_limit() -> Optional[int]:
    """This process's RLIMIT_FSIZE in bytes, None when unlimited (or unknown)."""
    try:
        import resource
    except ImportError:  # Windows
        return None
    soft, _ = resource.getrlimit(resource.RLIMIT_FSIZE)
    return None if soft == resource.RLIM_INFINITY else int(soft)


def write_failure(path: str, exc: BaseException, needed_bytes: int = 0, free: Optional[int] = None,
                  written_bytes: int = 0) -> UserInputError:
    """The user-facing error for a failed or unverifiable write of ``path``.

    ``free`` is the free space measured right after the failure (before the temporary
    file was removed), ``written_bytes`` the size the temporary file had reached and
    ``needed_bytes`` the expected size of the output.
    """
    folder = os.path.dirname(os.path.abspath(path))
    name = os.path.basename(path)
    number = _errno_in_chain(exc)
    limit = _file_size_limit()
    if number is None and limit is not None and written_bytes >= limit - (64 << 10):
        number = errno.EFBIG
    needed = f"about {_megabytes(needed_bytes)} MB needed" if needed_bytes else "more space needed"
    if number in (errno.ENOSPC, errno.EDQUOT) or (free is not None and free < _FULL_MARGIN_BYTES):
        return UserInputError(
            f"No space left on {folder}: writing '{name}' failed ({needed}, "
            f"{_megabytes(free or 0)} MB free). Free some space or choose another output folder; "
            "nothing was written.")
    if number == errno.EFBIG:
        return UserInputError(
            f"Writing '{name}' in {folder} hit the file size limit of this process (ulimit -f) or of the "
            f"file system ({needed}). Raise the limit or choose another output folder; nothing was written.")
    if number in (errno.EACCES, errno.EPERM, errno.EROFS):
        return UserInputError(
            f"Cannot write '{name}' in {folder}: {os.strerror(number)}. Choose a folder you have write "
            "permission for; nothing was written.")
    detail = " ".join(str(exc).split())[:300]
    return UserInputError(f"Writing '{path}' failed: {detail}. Nothing was written.")


_PASSED_THROUGH = (UserInputError, Cancelled, KeyboardInterrupt, MemoryError, SystemExit)


def check_free_space(folder: str, needed_bytes: int, compressed: bool, path: str,
                     already_reserved: int = 0) -> int:
    """Refuse early when ``needed_bytes`` cannot fit in ``folder``; returns the bytes reserved.

    For compressed outputs the size is only an upper bound, so the check refuses
    only when the output would not fit even ``_BEST_COMPRESSION`` times smaller.
    """
    minimum = int(needed_bytes / _BEST_COMPRESSION) if compressed else int(needed_bytes)
    free = free_bytes(folder)
    if free is not None and minimum > 0 and free < minimum + already_reserved:
        raise UserInputError(
            f"No space left on {folder} for '{os.path.basename(path)}': about {_megabytes(needed_bytes)} MB "
            f"needed{' uncompressed' if compressed else ''}, {_megabytes(free)} MB free. Free some space or "
            "choose another output folder; nothing was written.")
    return minimum


# --------------------------------------------------------------------------- atomic files


def fsync_file(path: str) -> None:
    """Flush a file (or, on POSIX, a folder's entries) to the disk."""
    fd = os.open(path, os.O_RDWR if os.name == "nt" else os.O_RDONLY)  # Windows commits writable handles only
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_folder(folder: str) -> None:
    with contextlib.suppress(OSError):  # some file systems refuse to fsync folders
        fsync_file(folder)


def _remove(path: str) -> None:
    with contextlib.suppress(OSError):
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        else:
            os.remove(path)


class AtomicFile:
    """One output file written under a temporary name, verified, then renamed into place.

    Use as a context manager; ``tmp`` is the path to write. On a clean exit the
    file is flushed, checked with ``verify(tmp)`` (which raises on a bad file),
    its style sidecar ``ui/styles/<style>.qml`` is added, and both are renamed.
    Inside an :class:`OutputSet` the renames wait for the set. ``needed_bytes``
    (expected size; ``compressed`` when that is an upper bound) drives the early
    free-space check and the full-disk message.
    """

    def __init__(self, path: str, verify: Optional[Callable[[str], None]] = None, style: Optional[str] = None,
                 needed_bytes: int = 0, compressed: bool = False, output_set: Optional["OutputSet"] = None):
        if not path or os.path.isdir(path):
            raise UserInputError(
                f"The output '{path}' is a folder or empty; give a file name (e.g. result.tif).")
        self.path = os.path.abspath(path)
        self.verify = verify
        self.style = style
        self.needed_bytes = int(needed_bytes)
        self.compressed = compressed
        self.output_set = output_set
        self.tmp = ""
        self.created_folder: Optional[str] = None
        self.finished = False

    # -- life cycle

    def __enter__(self) -> "AtomicFile":
        self.open()
        return self

    def __exit__(self, kind, exc, tb) -> bool:
        if exc is None:
            try:
                self.finish()
                if self.output_set is None:
                    self.commit()
            except BaseException as failure:
                self._fail(failure)
            return False
        self._fail(exc)
        return False  # pragma: no cover - _fail raises

    def open(self) -> str:
        """Create the destination folder if needed, clear stale temporaries, reserve space."""
        folder = os.path.dirname(self.path)
        self.created_folder = _first_missing_ancestor(folder)
        ensure_writable_dir(folder)
        remove_stale_temporaries(folder)
        reserved = self.output_set.reserved if self.output_set is not None else 0
        try:
            minimum = check_free_space(folder, self.needed_bytes, self.compressed, self.path, reserved)
        except UserInputError:
            self._remove_created_folder()  # also the first member of a set: it is not in the set yet
            raise
        if self.output_set is not None:
            self.output_set.add(self, minimum)
        self.tmp = temporary_name(self.path)
        return self.tmp

    def write_content(self) -> None:
        """Hook for subclasses: close whatever writes ``tmp`` (called before verification)."""

    def finish(self) -> None:
        """Close, fsync and verify the temporary file and its style sidecar."""
        if self.finished:
            return
        self.write_content()
        if not os.path.isfile(self.tmp):
            raise UserInputError(f"Writing '{self.path}' produced no file. Nothing was written.")
        fsync_file(self.tmp)
        if self.verify is not None:
            self.verify(self.tmp)
        if self.style:
            target = sidecar_paths(self.tmp)[0]
            shutil.copyfile(style_path(self.style), target)
            fsync_file(target)
        self.finished = True

    def commit(self) -> None:
        """Rename the sidecars, then the file, to their final names."""
        for tmp_side, final_side in zip(sidecar_paths(self.tmp), sidecar_paths(self.path)):
            if os.path.exists(tmp_side):
                os.replace(tmp_side, final_side)
            elif os.path.exists(final_side) and final_side.endswith(".aux.xml"):
                os.remove(final_side)  # GDAL's statistics of an older output must not describe the new one
        os.replace(self.tmp, self.path)
        _fsync_folder(os.path.dirname(self.path))

    def discard(self) -> None:
        """Remove the temporary file and its sidecars (never the final file)."""
        self.close_quietly()
        if self.tmp:
            for path in [self.tmp, *sidecar_paths(self.tmp)]:
                _remove(path)

    def remove_final(self) -> None:
        """Remove a committed output (a later member of its set failed)."""
        for path in [self.path, *sidecar_paths(self.path)]:
            _remove(path)

    def close_quietly(self) -> None:
        """Hook for subclasses: close an open writer without raising."""

    def written_bytes(self) -> int:
        try:
            return os.path.getsize(self.tmp) if self.tmp else 0
        except OSError:
            return 0

    def _fail(self, exc: BaseException) -> None:
        free = free_bytes(os.path.dirname(self.path))
        written = self.written_bytes()
        self.discard()
        if self.output_set is None:
            self._remove_created_folder()
        if isinstance(exc, _PASSED_THROUGH):
            raise exc
        raise write_failure(self.path, exc, self.needed_bytes, free, written) from exc

    def _remove_created_folder(self) -> None:
        if self.created_folder is not None and os.path.isdir(self.created_folder):
            with contextlib.suppress(OSError):
                if not any(os.scandir(self.created_folder)) or _only_empty_dirs(self.created_folder):
                    shutil.rmtree(self.created_folder)


def _only_empty_dirs(folder: str) -> bool:
    return all(not files for _, _, files in os.walk(folder))


@contextlib.contextmanager
def atomic_file(path: str, verify: Optional[Callable[[str], None]] = None, style: Optional[str] = None,
                needed_bytes: int = 0, output_set: Optional["OutputSet"] = None) -> Iterator[str]:
    """Yield a temporary path for ``path`` (see :class:`AtomicFile`): write it with any library."""
    with AtomicFile(path, verify, style, needed_bytes, output_set=output_set) as atomic:
        yield atomic.tmp


def write_text(path: str, text: str, verify: Optional[Callable[[str], None]] = None, style: Optional[str] = None,
               output_set: Optional["OutputSet"] = None) -> str:
    """Write UTF-8 ``text`` to ``path`` atomically; it must read back exactly, then pass ``verify``."""
    def check(tmp: str) -> None:
        with open(tmp, encoding="utf-8") as handle:
            if handle.read() != text:
                raise OSError("the text file reads back differently")
        if verify is not None:
            verify(tmp)

    with atomic_file(path, verify=check, style=style, needed_bytes=len(text.encode("utf-8")),
                     output_set=output_set) as tmp:
        with open(tmp, "w", encoding="utf-8") as handle:
            handle.write(text)
    return path


class OutputSet:
    """Outputs of one run that appear together or not at all.

    Members (``set.file(...)``, ``set.raster(...)``) are verified when their own
    ``with`` block ends; the renames happen, in the order the members were added,
    when the set's block ends without error. Any failure removes every member.
    """

    def __init__(self) -> None:
        self.members: List[AtomicFile] = []
        self.reserved = 0

    def add(self, member: AtomicFile, reserved: int) -> None:
        self.members.append(member)
        self.reserved += reserved

    def file(self, path: str, verify: Optional[Callable[[str], None]] = None, style: Optional[str] = None,
             needed_bytes: int = 0):
        """A member file: ``with outputs.file(path, verify) as tmp: <write tmp>``."""
        return atomic_file(path, verify, style, needed_bytes, output_set=self)

    def text(self, path: str, text: str, verify: Optional[Callable[[str], None]] = None,
             style: Optional[str] = None) -> str:
        """A member text file (e.g. a VRT), see :func:`write_text`."""
        return write_text(path, text, verify, style, output_set=self)

    def raster(self, path: str, grid, descriptions: Sequence[str], **options):
        """A member GeoTIFF (:class:`core.io.RasterWriter` options)."""
        from .write import RasterWriter

        return RasterWriter(path, grid, descriptions, output_set=self, **options)

    def __enter__(self) -> "OutputSet":
        return self

    def __exit__(self, kind, exc, tb) -> bool:
        if exc is not None:
            self._rollback()
            return False
        committed = []
        written = 0
        try:
            for member in self.members:
                written = member.written_bytes()
                member.finish()
            for member in self.members:
                member.commit()
                committed.append(member)
        except BaseException as failure:
            for member in committed:
                member.remove_final()
            free = free_bytes(os.path.dirname(self.members[0].path)) if self.members else None
            self._rollback()
            if isinstance(failure, _PASSED_THROUGH):
                raise
            path = self.members[len(committed)].path if len(committed) < len(self.members) else ""
            raise write_failure(path, failure, sum(m.needed_bytes for m in self.members), free,
                                written) from failure
        return False

    def _rollback(self) -> None:
        for member in self.members:
            member.discard()
        for member in self.members:
            member._remove_created_folder()
