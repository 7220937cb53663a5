"""Rendering: report blocks to markdown and self-contained HTML, tables, figures, the image gallery and
the CSV tables behind `dvc plots`. Knows nothing of the paper (``occo.report.paper`` compares)."""
