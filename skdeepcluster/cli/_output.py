"""The output folder of ``skdeepcluster cluster``: results replace it in one step.

:func:`_check_output_location` refuses, before any work, an output folder
that cannot be written or that holds files no earlier run wrote;
:class:`_OutputFolder` writes every file, flushed to disk, into a temporary
sibling folder and swaps it into place at once (``renameat2`` where
available), holding SIGINT and SIGTERM back meanwhile, so that an interrupted
or killed run leaves the folder as it was.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import secrets
import shutil
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ._common import CLIError, _one_line

#: Test hook: seconds to sleep after each file written into the temporary
#: output folder, so that a test can kill the command while it writes.
_WRITE_DELAY_ENV = "SKDEEPCLUSTER_TEST_WRITE_DELAY"


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def _check_output_location(out: Path, *, overwrite: bool, inputs: list[Path]) -> Path:
    """Resolve ``--out`` and refuse, before any work, a place the results cannot go.

    Returns the absolute output folder. The results are written into a new
    folder next to it first, so its parent (or the nearest ancestor that
    exists) must be a writable folder.
    """
    target = out.expanduser().resolve()
    if target.parent == target:
        raise CLIError(f"--out {out} is a file system root; choose a folder inside it.")
    if target.exists():
        _check_existing_output(target, overwrite=overwrite, inputs=inputs)
    ancestor = target.parent
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise CLIError(f"cannot create the output folder {target}: {ancestor} is not a folder.")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise CLIError(f"cannot write the output folder {target}: {ancestor} is not writable.")
    _check_can_create(ancestor, target)
    return target


def _check_can_create(folder: Path, target: Path) -> None:
    """Create and remove a folder in ``folder``, where the results will be written.

    Permission bits do not tell everything: for root ``os.access`` allows any
    folder, yet nothing can be created in ``/proc`` or on a read-only file
    system. Trying costs nothing and finds such a place before the fit, not
    after it. The probe is named like the temporary folders, so that one left
    by a killed command is removed by a later run (``_remove_stale_siblings``).
    """
    probe = _sibling(folder / target.name, "probe")
    try:
        probe.mkdir()
    except OSError as exc:
        reason = exc.strerror or _one_line(exc)
        raise CLIError(
            f"cannot write the output folder {target}: cannot create a folder in {folder} "
            f"({reason})."
        ) from None
    with contextlib.suppress(OSError):
        probe.rmdir()


def _check_existing_output(target: Path, *, overwrite: bool, inputs: list[Path]) -> None:
    if not target.is_dir():
        raise CLIError(f"--out {target} exists and is not a folder; choose another --out.")
    if not os.access(target, os.W_OK | os.X_OK):
        raise CLIError(f"the output folder {target} is not writable.")
    if not any(target.iterdir()):
        return  # an empty folder is fine
    if not overwrite:
        raise CLIError(
            f"the output folder {target} is not empty; pass --overwrite to replace the "
            "results it holds, or choose another --out."
        )
    if not (target / "summary.json").is_file():
        raise CLIError(
            f"the output folder {target} holds no summary.json, so no results of an "
            "earlier run, and --overwrite replaces only those; empty it or choose another --out."
        )
    for path in [*inputs, Path.cwd().resolve()]:
        if _inside(path, target):
            raise CLIError(
                f"{path} is inside the output folder {target}, which --overwrite would "
                "replace; choose another --out."
            )
    _check_only_run_files(target)


def _run_files(target: Path) -> set[str]:
    """The names of the files that the earlier run in ``target`` wrote there.

    Every run lists the files it wrote (summary.json included) under
    ``files`` in its summary.json; where that cannot be read, only
    summary.json itself counts as the earlier run's.
    """
    try:
        summary = json.loads((target / "summary.json").read_text(encoding="utf-8"))
        files = summary.get("files")
    except (OSError, ValueError, AttributeError):  # unreadable, not JSON, not an object
        files = None
    names = {"summary.json"}
    if isinstance(files, list):
        names.update(name for name in files if isinstance(name, str))
    return names


def _check_only_run_files(target: Path) -> None:
    """Refuse to replace ``target`` while it holds files that no earlier run wrote.

    ``--overwrite`` deletes the whole folder; anything its summary.json does
    not list (notes, a user's own plot) would be lost without a word.
    """
    try:
        present = sorted(path.name for path in target.iterdir())
    except (FileNotFoundError, NotADirectoryError):  # gone meanwhile: nothing to lose
        return
    others = [name for name in present if name not in _run_files(target)]
    if not others:
        return
    shown = ", ".join(others[:3])
    if len(others) > 3:
        shown += f" and {len(others) - 3} more"
    raise CLIError(
        f"the output folder {target} holds files that are not results of an earlier run "
        f"(not listed in its summary.json): {shown}; --overwrite would delete them, so "
        "move them elsewhere or choose another --out."
    )


def _sibling(target: Path, kind: str) -> Path:
    """A new name ``<target>.<kind>-<pid>-<random>`` next to ``target``."""
    return target.with_name(f"{target.name}.{kind}-{os.getpid()}-{secrets.token_hex(6)}")


def _fsync(path: Path, *, directory: bool = False) -> None:
    """Flush ``path`` to disk (a folder: its entries, where the system allows it)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        if directory:
            return
        raise
    try:
        os.fsync(fd)
    except OSError:
        if not directory:
            raise
    finally:
        os.close(fd)


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one atomic step (Linux ``renameat2(RENAME_EXCHANGE)``).

    Returns False where that is not available (other systems, old kernels or C
    libraries, file systems without it).
    """
    if not sys.platform.startswith("linux"):
        return False
    import ctypes

    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p] * 2 + [ctypes.c_uint]
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    error = ctypes.get_errno()
    if error in (errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
        return False
    raise OSError(error, os.strerror(error), str(b))


@contextlib.contextmanager
def _signals_deferred():
    """Hold SIGINT and SIGTERM back for the few steps that must not be cut in two."""
    if not hasattr(signal, "pthread_sigmask") or threading.current_thread() is not (
        threading.main_thread()
    ):
        yield
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def _swap_into_place(new: Path, target: Path, *, overwrite: bool) -> Path | None:
    """Make the folder ``new`` become ``target``; return where the old ``target`` went.

    A missing or empty ``target`` is replaced by one rename. A ``target`` with
    files (only with ``overwrite``) is swapped with ``new`` atomically where the
    system can; elsewhere it is renamed aside first and put back if the second
    rename fails. The caller removes the returned folder.
    """
    try:
        os.rename(new, target)
        return None
    except OSError as exc:
        if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST) or not target.is_dir():
            raise
    if not overwrite and any(target.iterdir()):  # Windows: even an empty one is in the way
        raise CLIError(
            f"the output folder {target} received files during the run; pass "
            "--overwrite to replace them, or choose another --out."
        )
    if _exchange(new, target):
        return new
    aside = _sibling(target, "old")
    os.rename(target, aside)
    try:
        os.rename(new, target)
    except BaseException:
        os.rename(aside, target)
        raise
    return aside


def _process_alive(pid: int) -> bool:
    if os.name == "nt":  # os.kill(pid, 0) would send CTRL_C_EVENT there: assume alive
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (OSError, OverflowError):
        return True
    return True


def _remove_stale_siblings(target: Path, started: float) -> None:
    """Remove the temporary folders that killed runs left next to ``target``.

    Only folders older than this run whose process (the pid in their name) is
    gone; others may belong to a run still writing.
    """
    pattern = re.compile(re.escape(target.name) + r"\.(?:tmp|old|probe)-(\d+)-[0-9a-f]+")
    with contextlib.suppress(OSError):
        for path in list(target.parent.iterdir()):
            match = pattern.fullmatch(path.name)
            if match is None or _process_alive(int(match.group(1))):
                continue
            if path.is_symlink() or not path.is_dir() or path.stat().st_mtime >= started:
                continue
            shutil.rmtree(path, ignore_errors=True)


class _OutputFolder:
    """Write one run's results next to ``target``, then swap them into place.

    Every file is written, and flushed to disk, into a new sibling folder
    ``<target>.tmp-<pid>-<random>``; :meth:`commit` then makes that folder
    ``target`` in one step. Whenever the command is interrupted or killed,
    ``target`` holds either its previous contents or every new file, never a
    mix or a half-written file. An uncommitted temporary folder is removed on
    exit; one that a killed run left behind is removed by a later run.
    """

    def __init__(self, target: Path, *, overwrite: bool, started: float) -> None:
        self.target = target
        self.overwrite = overwrite
        self.started = started
        self.files: list[str] = []
        self._tmp: Path | None = None

    def __enter__(self) -> _OutputFolder:
        self.target.parent.mkdir(parents=True, exist_ok=True)
        tmp = _sibling(self.target, "tmp")
        tmp.mkdir()
        self._tmp = tmp
        return self

    def __exit__(self, *exc_info) -> None:
        if self._tmp is not None:  # not committed, or the previous results after the swap
            shutil.rmtree(self._tmp, ignore_errors=True)

    def write(self, filename: str, save: Callable[[Path], Any]) -> None:
        """Write ``filename`` with ``save(path)`` and flush it to disk."""
        path = self._tmp / filename
        try:
            save(path)
            _fsync(path)
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        self.files.append(filename)
        delay = float(os.environ.get(_WRITE_DELAY_ENV) or 0)  # test hook, see above
        if delay > 0:
            time.sleep(delay)

    def commit(self) -> None:
        """Swap the complete new folder into place and remove the previous results."""
        if self.overwrite:  # files put into the folder during the run are kept too
            _check_only_run_files(self.target)
        _fsync(self._tmp, directory=True)
        with _signals_deferred():
            self._tmp = _swap_into_place(self._tmp, self.target, overwrite=self.overwrite)
        _fsync(self.target.parent, directory=True)
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None
        _remove_stale_siblings(self.target, self.started)
