"""Keeps PPO's large, short-lived tensors off the page-fault path (glibc only).

An update allocates and frees [rows, hosts, hidden] tensors of tens of MB dozens of times
per second. glibc serves blocks that large with a fresh mmap (and trims freed heap back to
the kernel), so every allocation is paid again in page faults that zero the memory. Raising
the mmap threshold to its maximum and never trimming keeps that memory in the process: the
training loop then reuses the same pages. Measured in `oppen bench train` (docs/benchmarks.md).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

# mallopt parameters, from glibc's <malloc.h>.
M_TRIM_THRESHOLD = -1
M_TOP_PAD = -2
M_MMAP_THRESHOLD = -3

MMAP_THRESHOLD_MAX = 32 << 20  # glibc refuses more on 64-bit (half of HEAP_MAX_SIZE)
TOP_PAD = 64 << 20
NEVER_TRIM = (1 << 31) - 1

_applied = False


def keep_freed_memory() -> bool:
    """Tunes glibc's allocator for the training process; True when it took effect.

    Idempotent. The order matters: raising the trim threshold alone turns off glibc's
    adaptive mmap threshold and makes every large tensor an mmap (2.3x slower in the
    benchmark), so the mmap threshold goes first, and if glibc refuses it nothing is
    changed."""
    global _applied
    if _applied:
        return True
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").mallopt
    except (OSError, AttributeError):  # not glibc (musl has no mallopt)
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    if not mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_MAX):
        return False
    _applied = bool(mallopt(M_TRIM_THRESHOLD, NEVER_TRIM) and mallopt(M_TOP_PAD, TOP_PAD))
    return _applied
