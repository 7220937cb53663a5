"""The report stage: paper-shaped tables, training curves, metric bars and an image gallery, in markdown and HTML."""

from occo.report.build import ReportConfig, build_report
from occo.report.headline import headline
from occo.report.paper.reference import PaperReference, PaperTable, difference, load_paper

__all__ = ["PaperReference", "PaperTable", "ReportConfig", "build_report", "difference", "headline", "load_paper"]
