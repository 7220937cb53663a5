"""Rendering: report blocks to markdown and self-contained HTML, tables, figures, gallery, plot tables."""
