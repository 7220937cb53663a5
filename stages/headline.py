"""DVC stage `headline`: OCCO's headline numbers in one flat metrics file, metrics/headline.json.

Reads metrics/fusion/*.json, metrics/detect/<ds>/occo.json and metrics/segment/<ds>/occo.json; writes
  metrics/headline.json   <dataset>.EN/SF/AG/CC, <dataset>.detect.ap50/ap50_95, <dataset>.segment.miou.
dvc.yaml declares this stage first, so `dvc exp show` and `dvc metrics show` list these columns first.
"""

from __future__ import annotations

import logging

from occo.pipeline.entry import run_stage
from occo.report.headline import write_headline

log = logging.getLogger("stages.headline")


def main(argv: list[str] | None = None) -> None:
    run_stage(__doc__, __file__, argv, lambda cfg, root, _: log.info("wrote %s", write_headline(root)))


if __name__ == "__main__":
    main()
