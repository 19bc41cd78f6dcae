"""What both pages share: the style sheet, the header with the link to the other page, pictures."""

from __future__ import annotations

import html

__all__ = ["CSS", "header", "image", "set_image", "PAGES"]

PAGES = {"workshop": ("workshop.ipynb", "Workshop: keys, decryption, noise"),
         "study": ("study.ipynb", "Study: encrypted cross-validation of your data")}

# Large type for a projector; tables that stay readable at the back of a room.
CSS = """<style>
.mpclr-page { font-size: 17px; max-width: 1250px; }
.mpclr-page h1 { font-size: 30px; margin: 4px 0 2px 0; }
.mpclr-page h2 { font-size: 24px; margin: 14px 0 4px 0; }
.mpclr-page h3 { font-size: 20px; margin: 10px 0 4px 0; }
.mpclr-page .widget-label, .mpclr-page .widget-readout, .mpclr-page .widget-dropdown select,
.mpclr-page .widget-button, .mpclr-page .widget-toggle-button, .mpclr-page .widget-upload,
.mpclr-page .lm-TabBar-tabLabel, .mpclr-page .widget-html-content { font-size: 17px; }
.mpclr-page .widget-button, .mpclr-page .widget-toggle-button, .mpclr-page .widget-upload { height: 40px; }
.mpclr-workshop, .mpclr-workshop .widget-label, .mpclr-workshop .widget-readout,
.mpclr-workshop .widget-toggle-button, .mpclr-workshop .widget-button,
.mpclr-workshop .lm-TabBar-tabLabel, .mpclr-workshop .widget-html-content { font-size: 21px; }
.mpclr-workshop .widget-toggle-button, .mpclr-workshop .widget-button { height: 48px; }
.mpclr-page .lm-TabBar-tab { flex: 0 0 auto !important; max-width: none !important; min-width: 0 !important;
  min-height: 40px; padding: 0 16px; }
.mpclr-page .lm-TabBar { min-height: 42px; }
.mpclr-page .lm-TabBar-tabLabel { line-height: 38px; }
table.mpclr-table, table.mpclr-holdings { border-collapse: collapse; margin: 6px 0 10px 0; }
table.mpclr-table td, table.mpclr-table th { border: 1px solid #ccc; padding: 3px 8px; text-align: right; }
table.mpclr-table th { background: #eef; text-align: left; }
table.mpclr-table td.mpclr-text { text-align: left; }
.mpclr-page .widget-checkbox label, .mpclr-page .widget-checkbox .widget-label-basic { font-size: 17px; }
table.mpclr-holdings td, table.mpclr-holdings th { border: 1px solid #bbb; padding: 6px 12px; text-align: center; }
table.mpclr-holdings tbody th { text-align: left; font-weight: normal; }
td.mpclr-new { background: #fff3b0; font-weight: bold; color: #1b6e2b; }
td.mpclr-held { color: #1b6e2b; }
td.mpclr-nobody { color: #b00020; font-weight: bold; }
.mpclr-error { color: #b00020; background: #fdecee; border-left: 5px solid #b00020; padding: 8px 12px;
  white-space: pre-wrap; }
.mpclr-ok { color: #1b6e2b; }
.mpclr-note { color: #555; }
.mpclr-downloads a { color: #1565c0; text-decoration: underline; }
</style>"""


def header(page: str, title: str, lead: str) -> str:
    """The page's title, a sentence, and links to the pages (relative: they work behind any base URL)."""
    links = " · ".join(
        f"<b>{html.escape(text)}</b>" if key == page else f"<a href='{file}'>{html.escape(text)}</a>"
        for key, (file, text) in PAGES.items())
    return (f"{CSS}<div><div class='mpclr-note'>mpclr · {links}</div><h1>{html.escape(title)}</h1>"
            f"<p>{lead}</p></div>")


def image(**layout):
    """An empty picture that fills the page's width (figures are drawn large: they stay sharp when scaled)."""
    import ipywidgets as widgets

    return widgets.Image(format="png", layout=widgets.Layout(width=layout.pop("width", "100%"),
                                                             max_width=layout.pop("max_width", "1100px"), **layout))


def set_image(widget, fig, dpi: int = 150) -> None:
    """Draw a matplotlib figure into a picture widget (and close the figure)."""
    from .results import figure_png

    widget.value = figure_png(fig, dpi)
