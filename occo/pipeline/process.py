"""What the `occo` command and the stage scripts set up for their process."""

from __future__ import annotations

import atexit
import gc


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
