"""occo.pipeline.process: what commands set up for their process."""

from __future__ import annotations

import gc
import subprocess
import sys

from occo.pipeline.process import skip_final_collection


def test_objects_are_frozen_at_exit_not_before():
    # atexit runs handlers last-in first-out: the probe registered first runs after gc.freeze.
    code = (
        "import atexit, gc\n"
        "atexit.register(lambda: print('frozen at exit:', gc.get_freeze_count() > 0))\n"
        "from occo.pipeline.process import skip_final_collection\n"
        "skip_final_collection(); skip_final_collection()\n"
        "print('frozen before exit:', gc.get_freeze_count() > 0)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    assert out.splitlines() == ["frozen before exit: False", "frozen at exit: True"]


def test_calling_it_in_process_changes_nothing_now():
    skip_final_collection()
    assert gc.isenabled() and gc.get_freeze_count() == 0
