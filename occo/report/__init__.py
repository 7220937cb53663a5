"""The report stage: one readable page of the whole run, in markdown and as self-contained HTML.

``collect`` reads the metrics files, ``paper/`` compares them with the OCCO paper's Tables 1-9,
``render/`` turns tables, figures and the gallery into markdown and HTML, and ``build`` assembles the
page. ``headline`` writes the run's headline numbers for DVC.
"""

from occo.report.build import build_report
from occo.report.headline import headline
from occo.report.paper.reference import PaperReference, PaperTable, difference, load_paper

__all__ = ["PaperReference", "PaperTable", "build_report", "difference", "headline", "load_paper"]
