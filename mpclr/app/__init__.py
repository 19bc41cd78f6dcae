"""The app: two pages in the browser for workshop rooms and for researchers who do not write Python.

`mpclr app` (or `make app`) starts Voilà on notebooks/app/ (server.py): `workshop.ipynb`, the key ceremony,
threshold decryption, smudging and noise for a room (workshop_page.py, on mpclr.workshop), and
`study.ipynb`, a whole encrypted cross-validation from a form, a shipped data set or an uploaded CSV
(study_page.py, on mpclr.pipeline). The notebooks only call these; the logic without widgets (the
ceremony's steps, data sources and uploads, a study run phase by phase, the regression table, the tables,
downloads and report) is in modules of its own, tested without a browser.

Importing this package is cheap: ipywidgets and Voilà are imported by the pages and the server only.
"""

__all__ = ["StudyPage", "WorkshopPage"]


def __getattr__(name):
    if name == "StudyPage":
        from .study_page import StudyPage

        return StudyPage
    if name == "WorkshopPage":
        from .workshop_page import WorkshopPage

        return WorkshopPage
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
