"""An HTML page template for ``dvc plots show`` that carries Vega, Vega-Lite and Vega-Embed inline.

DVC's own page loads the three libraries from a CDN, so offline it renders blank. This template embeds
the bundle that vl-convert-python ships (it defines ``window.vegaEmbed``, which DVC's plot snippets
call), so ``dvc plots show`` works without a network. ``make install`` writes it to
``.cache/occo/plots.html``, and ``.dvc/config`` (``plots.html_template``) points DVC at it.

    python -m occo.report.render.offline_plots .cache/occo/plots.html
"""

from __future__ import annotations

import argparse
from pathlib import Path

import vl_convert

from occo.data.io import write_text_atomic

PAGE = """<!DOCTYPE html>
<html>
<head>
    {refresh_tag}
    <meta charset="utf-8">
    <title>DVC Plot</title>
    <script>VEGA_BUNDLE</script>
    <style>table {border-spacing: 15px;}</style>
</head>
<body>
    {plot_divs}
</body>
</html>
"""


def html_template() -> str:
    """DVC's page with the Vega libraries inline and no ``{scripts}`` placeholder (so no CDN tags)."""
    bundle = vl_convert.javascript_bundle()
    if "</script" in bundle:
        raise RuntimeError("the Vega bundle contains '</script' and cannot be inlined")
    return PAGE.replace("VEGA_BUNDLE", bundle)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="where to write the template")
    args = parser.parse_args(argv)
    write_text_atomic(args.out, html_template())
    print(f"wrote {args.out} (Vega {vl_convert.get_vega_version()}, Vega-Embed {vl_convert.get_vega_embed_version()})")


if __name__ == "__main__":
    main()
