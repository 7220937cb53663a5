"""What the `occo` command and the stage scripts set up for their process."""

from __future__ import annotations

import atexit
import gc
import os


def skip_final_collection() -> None:
    """Freeze every live object into the permanent generation when the interpreter exits.

    CPython's last garbage collection at exit walks every object that importing torch created, a
    noticeable share of a short command (docs/metrics.md has the measurement). Commands write and
    close their files before they return, so nothing is left for that pass to do. Done at exit
    (``atexit``), so a process that runs commands in-process, such as the tests, keeps collecting as
    usual; calling this twice registers it once.
    """
    atexit.unregister(gc.freeze)
    atexit.register(gc.freeze)


def process_seconds() -> float | None:
    """Seconds since this process started (Linux /proc: start-up and imports included); None elsewhere."""
    try:
        with open("/proc/self/stat", encoding="ascii") as fh:
            start_ticks = int(fh.read().rsplit(")", 1)[1].split()[19])  # field 22, starttime
        with open("/proc/uptime", encoding="ascii") as fh:
            uptime = float(fh.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return uptime - start_ticks / os.sysconf("SC_CLK_TCK")
