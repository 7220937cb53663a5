"""bench/pipeline.py's log parsing: which stages ran and how long each took."""

from __future__ import annotations

from bench.pipeline import ran_stages, stage_times

LOG = """\
Running stage 'inputs':
> python stages/inputs.py --params params.yaml
2026-11-30 08:00:00,000 INFO occo.pipeline.entry: stage inputs done in 1.5 s
Stage 'download' didn't change, skipping
Running stage 'evaluate':
> python stages/evaluate.py --params params.yaml --part ours
evaluate Local: 100%|##########| 2/2
2026-11-30 08:00:03,000 INFO occo.pipeline.entry: stage evaluate done in 2.25 s
"""


def test_ran_stages_and_their_times():
    assert ran_stages(LOG) == ["inputs", "evaluate"]
    assert stage_times(LOG) == {"inputs": 1.5, "evaluate": 2.25}
