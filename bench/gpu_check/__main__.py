"""``python -m bench.gpu_check``: the whole GPU check (a CPU dry run where CUDA is absent)."""

import sys

from bench.gpu_check.runner import main

sys.exit(main())
