"""Allocator settings for per-image work: keep freed memory for the next image.

With glibc's defaults, a process that decodes an image, works on it and frees it hands the memory back to the
kernel and faults it in again for the next image: hundreds of thousands of page faults per run (300 k for 512 flips
of 640x640 images), a quarter of the time of a fast op. Two ``mallopt`` settings keep freed memory (up to 128 MiB
per process) in the heap instead. They are set in datatools' worker processes and by the ``datatools`` data commands
(not ``train``, whose memory is torch's), never in a process that imports datatools as a library and runs its work
there.
"""

from __future__ import annotations

import ctypes
import functools
import platform

__all__ = ["MMAP_THRESHOLD", "TRIM_THRESHOLD", "keep_freed_memory"]

#: allocations under this come from the heap (and are reused), not from fresh zeroed pages
MMAP_THRESHOLD = 32 * 2**20
#: free memory at the top of the heap is given back to the kernel only past this
TRIM_THRESHOLD = 128 * 2**20

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's malloc.h


@functools.cache
def keep_freed_memory() -> bool:
    """Apply :data:`MMAP_THRESHOLD` and :data:`TRIM_THRESHOLD` to this process (glibc only; once per process).

    Returns:
        Whether the settings were applied (False on other C libraries).
    """
    if platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL(None)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))
