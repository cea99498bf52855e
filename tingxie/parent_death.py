"""A process that Linux stops when its parent dies, even by SIGKILL: what `spawn`'s children (the API and
the workers of `make serve`) and a worker's embedded beat run, so that none outlives what started it."""

import ctypes
import ctypes.util
import signal

PR_SET_PDEATHSIG = 1  # from <sys/prctl.h>


def die_with_parent() -> None:
    """SIGTERM to this process when its parent dies (Linux's PR_SET_PDEATHSIG)."""
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
