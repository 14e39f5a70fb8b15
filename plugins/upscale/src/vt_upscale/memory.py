"""Keep the process's memory at the frames in flight, not at the most it ever held.

glibc's malloc serves large blocks with their own mappings, but raises that threshold to
the size of every such block freed (up to 32 MB): after the first frame, each frame's arrays
(model input and output, encoder frames) come from the heaps of whichever threads made them
and stay resident after they are freed. With a model running a frame per thread, measured on
carphone x4 (2 workers), that adds ~140 MB of RSS (431 MB against 289 MB for the same job).
A fixed threshold returns such blocks to the system when freed; costs ~1 ms of page faults per
frame against the 100+ ms of model per frame, as long as the backend keeps its working memory
in pools of its own (ncnn, onnxruntime's arena). Not for torch on the CPU: it mallocs every
activation, and a fresh mapping for each (~230 MB of page faults per carphone frame) took
20 s of system time on 120 frames against 13 s for a plain script.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

#: blocks of this size or more get their own mapping, released on free
LARGE_BLOCK = 1 << 20
_M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter number
_done = False


def release_large_blocks() -> bool:
    """Fix glibc's mmap threshold at :data:`LARGE_BLOCK` for this process (once; no-op
    elsewhere). Returns whether it is in effect."""
    global _done
    if _done:
        return True
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        _done = bool(libc.mallopt(_M_MMAP_THRESHOLD, LARGE_BLOCK))
    except (OSError, AttributeError):  # musl and others have no mallopt
        return False
    return _done
