"""Give freed memory back to the OS, so roles sharing a machine can use what another no longer needs."""
from __future__ import annotations

import ctypes
import gc


def release_memory() -> None:
    """Collect garbage and trim glibc's heap (a no-op where glibc is absent)."""
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass
