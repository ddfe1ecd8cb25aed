"""Keep glibc's malloc from handing request-sized buffers back to the kernel.

Request bodies and responses of tens of KiB are allocated and freed on every request,
by the loop and by the worker threads.  With glibc's defaults a freed block at the top of
a heap past 128 KiB is returned to the kernel at once, and the next request faults the
same pages in again: with 64 KiB POSTs that was about a quarter of the server's CPU.  A
higher trim threshold keeps that much free memory per heap for reuse.

Only the process-owning entry point (:func:`aiowsgi.run`, hence the command line) does
this: an embedding program's allocator is its own business.  Settings already made in the
environment (``GLIBC_TUNABLES``, ``MALLOC_*_``) are left alone.
"""

from __future__ import annotations

import ctypes
import logging
import os
import sys
from collections.abc import Mapping

log = logging.getLogger("aiowsgi")

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD_MAX = 1024 * 1024  # larger blocks are mapped, and unmapped when freed


def set_in_environment(environ: Mapping[str, str] | None = None) -> bool:
    """Whether malloc's thresholds were chosen in the environment already."""
    env = os.environ if environ is None else environ
    return "glibc.malloc." in env.get("GLIBC_TUNABLES", "") or any(
        name in env for name in ("MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_THRESHOLD_",
                                 "MALLOC_TOP_PAD_"))


def tune(trim_threshold: int) -> bool:
    """Set glibc's trim threshold (and a matching mmap threshold); False where that is
    not possible (not Linux, not glibc) or not wanted (0, or set in the environment)."""
    if not trim_threshold or not sys.platform.startswith("linux") or set_in_environment():
        return False
    try:
        libc = ctypes.CDLL(None)
    except OSError:
        return False
    if not hasattr(libc, "gnu_get_libc_version"):  # glibc's own: absent on musl
        return False
    mallopt = libc.mallopt
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    done: bool = (mallopt(_M_TRIM_THRESHOLD, trim_threshold) == 1 and
                  mallopt(_M_MMAP_THRESHOLD, min(trim_threshold, MMAP_THRESHOLD_MAX)) == 1)
    if not done:
        log.debug("mallopt refused malloc_trim_threshold=%d", trim_threshold)
    return done
