"""Which SWF traces a job may read. A submitted job's trace is read with the server's or the
dispatcher's rights, so its path must name a regular file, under a size limit, inside one of
the configured trace folders (OPPEN_TRACE_DIRS): never a device such as /dev/zero, a secret
such as /etc/shadow, or a symlink out of those folders."""

from __future__ import annotations

import os
import stat
from collections.abc import Sequence
from pathlib import Path

from app.core.errors import ConfigError

# The largest trace a run reads unless OPPEN_TRACE_MAX_BYTES (submissions) says otherwise.
DEFAULT_TRACE_MAX_BYTES = 256 * 1024 * 1024


def check_trace_file(path: str | Path, max_bytes: int) -> Path:
    """The trace as a regular file no larger than ``max_bytes``; raises ConfigError."""
    p = Path(path).expanduser()
    try:
        info = p.stat()
    except OSError as exc:
        raise ConfigError(f"training option trace: cannot read {str(path)!r} "
                          f"({exc.strerror or exc})") from None
    if not stat.S_ISREG(info.st_mode):
        raise ConfigError(f"training option trace: {str(path)!r} is not a regular file")
    if info.st_size > max_bytes:
        raise ConfigError(f"training option trace: {str(path)!r} is {info.st_size:,} bytes, "
                          f"over the limit of {max_bytes:,} (OPPEN_TRACE_MAX_BYTES)")
    return p


def check_trace_allowed(path: str | Path, allowed: Sequence[Path], max_bytes: int) -> Path:
    """The trace, if it is a regular file under one of ``allowed`` once every symlink is
    resolved; raises ConfigError naming the folders otherwise."""
    real = Path(os.path.realpath(Path(path).expanduser()))
    roots = [Path(os.path.realpath(d.expanduser())) for d in allowed]
    if not any(real.is_relative_to(root) for root in roots):
        where = ", ".join(str(r) for r in roots) or "none configured"
        raise ConfigError(f"training option trace: {str(path)!r} is not in a trace folder "
                          f"({where}; set OPPEN_TRACE_DIRS)")
    return check_trace_file(real, max_bytes)


def locate_trace(trace: str, checkpoint: Path, dirs: Sequence[Path] = ()) -> str:
    """Where a checkpoint's trace is from here: its path as recorded when that exists from
    the current folder; else the same relative path from the checkpoint's folder or the one
    above it (a shipped checkpoint's recipe names traces from the repository root); else a
    file of the same name in one of ``dirs``. The recorded path when none exists (the
    caller's error then names it)."""
    recorded = Path(trace).expanduser()
    if recorded.is_absolute() or recorded.exists():
        return trace
    here = checkpoint.resolve().parent
    for candidate in (here / recorded, here.parent / recorded,
                      *(Path(d).expanduser() / recorded.name for d in dirs)):
        if candidate.is_file():
            return str(candidate)
    return trace
