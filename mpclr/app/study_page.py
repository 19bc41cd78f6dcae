"""The app's study page (notebooks/app/study.ipynb): a whole encrypted cross-validation from a form.

Pick a shipped data set or upload a CSV file (the loader's errors, naming line and column, appear under
it), choose the outcome column, hospitals, t, folds and preset, and run: the stages of mpclr.pipeline.Study
(as `mpclr cv`) run on a background thread with a progress bar per phase, then the page shows the ROC
curves, the AUC table beside the plaintext twin and scikit-learn, the regression table, what each party
saw, and links to download the JSON record and an HTML report. A second click while a study runs starts
nothing (the page says so); a failure says why, in the page.
"""

from __future__ import annotations

import html
import json
import threading

from .jobs import Job, Latest
from .look import header, image
from .results import (
    auc_mean,
    auc_rows,
    data_link,
    download_record,
    frame_html,
    party_views,
    report_html,
    roc_png,
    table_html,
    timing_rows,
)
from .sources import Source, UploadFolder, shipped_names
from .study_run import StudyRun, readable

__all__ = ["StudyPage"]

PRESETS = ("train", "fast", "deep")


def _error(text: str) -> str:
    return f"<div class='mpclr-error'>{html.escape(text)}</div>"


class StudyPage:
    def __init__(self, dataset: str = "breast_cancer", hospitals: int = 3, folds: int = 5):
        import ipywidgets as widgets

        self.w = widgets
        self.uploads = UploadFolder()
        self.uploaded: Source | None = None
        self.job = Job("mpclr-study")
        self.checker = Latest(on_error=lambda exc: self._show_data_error(exc), name="mpclr-data-check")
        self.run: StudyRun | None = None
        self._columns_of: Source | None = None  # the source whose columns the outcome menu lists
        wide = {"description_width": "initial"}
        row = widgets.Layout(width="360px")
        self.dataset_box = widgets.Dropdown(options=shipped_names(), value=dataset, description="data set",
                                            style=wide, layout=row)
        self.upload = widgets.FileUpload(accept=".csv,.tsv,.txt", multiple=False, description="upload a CSV file",
                                         layout=widgets.Layout(width="auto"))
        self.label_box = widgets.Dropdown(description="outcome column", style=wide, layout=row)
        self.positive_box = widgets.Text(description="positive value", placeholder="only if not 0/1, e.g. yes",
                                         style=wide, layout=row, continuous_update=False)
        self.data_status = widgets.HTML()
        self.data_status.add_class("mpclr-data-status")
        self.hospitals_box = widgets.IntSlider(value=hospitals, min=2, max=10, description="hospitals", style=wide,
                                               layout=row)
        self.t_box = widgets.IntSlider(value=hospitals, min=1, max=hospitals, description="t (= n: all hospitals)",
                                       style=wide, layout=row)
        self.folds_box = widgets.IntSlider(value=folds, min=2, max=10, description="folds", style=wide, layout=row)
        self.preset_box = widgets.Dropdown(options=PRESETS, value="train", description="preset", style=wide,
                                           layout=row)
        self.regression_box = widgets.Checkbox(value=True, description="regression table (pooled GLM if cheap)",
                                               style=wide)
        self.spec_status = widgets.HTML()
        self.run_button = widgets.Button(description="Run the encrypted study", button_style="primary",
                                         layout=widgets.Layout(width="300px"))
        self.run_button.add_class("mpclr-run")
        self.notice = widgets.HTML()
        self.notice.add_class("mpclr-notice")
        self.bars = {}
        self.progress = widgets.VBox()
        self.run_error = widgets.HTML()
        self.run_error.add_class("mpclr-run-error")
        self.summary = widgets.HTML()
        self.summary.add_class("mpclr-summary")
        self.auc_table = widgets.HTML()
        self.roc = image(width="560px", max_width="560px")
        self.regression = widgets.HTML()
        self.parties = widgets.HTML()
        self.downloads = widgets.HTML()
        self.downloads.add_class("mpclr-downloads")
        self.results = widgets.VBox(layout=widgets.Layout(display="none"))
        self.overview = widgets.VBox()  # the run's progress and its headline results: the README's picture
        self.overview.add_class("mpclr-run-area")

        self.dataset_box.observe(lambda _: self._source_changed(), "value")
        self.upload.observe(self._uploaded, "value")
        self.label_box.observe(lambda _: self._check_data(), "value")
        self.positive_box.observe(lambda _: self._check_data(), "value")
        self.hospitals_box.observe(self._hospitals_changed, "value")
        for box in (self.t_box, self.folds_box, self.preset_box):
            box.observe(lambda _: self._check_data(), "value")
        self.run_button.on_click(lambda _: self.start())
        self._source_changed()

    # ------------------------------------------------------------------------------------------ layout
    def view(self):
        w = self.w
        self.headline = w.VBox([self.summary,
                                w.HBox([w.VBox([w.HTML("<h3>AUC per fold</h3>"), self.auc_table]), self.roc])])
        self.overview.children = [self.progress, self.headline]
        self.results.children = [self.overview, w.HTML("<h2>Regression table</h2>"), self.regression,
                                 w.HTML("<h2>What each party saw</h2>"), self.parties, self.downloads]
        page = w.VBox([
            w.HTML(header("study", "An encrypted study of your data",
                          "The rows are split over simulated hospitals; each keeps its own and one share of the "
                          "key. The server trains and evaluates cross-validated logistic regression on encrypted "
                          "rows; the researcher receives only what the hospitals agreed to decrypt.")),
            w.HTML("<h2>1 · Data</h2>"), w.HBox([self.dataset_box, self.upload]),
            w.HBox([self.label_box, self.positive_box]), self.data_status,
            w.HTML("<h2>2 · Design</h2>"), w.HBox([self.hospitals_box, self.t_box]),
            w.HBox([self.folds_box, self.preset_box]), self.regression_box, self.spec_status,
            w.HTML("<h2>3 · Run</h2>"), self.run_button, self.notice, self.run_error, self.results])
        page.add_class("mpclr-page")
        return page

    def show(self):
        from IPython.display import display

        display(self.view())

    # ------------------------------------------------------------------------------------------ data
    def source(self) -> Source:
        if self.uploaded is not None and self.dataset_box.value == self._upload_option():
            return self.uploaded
        return Source(self.dataset_box.value)

    def _upload_option(self) -> str:
        return f"uploaded: {self.uploaded.name}" if self.uploaded is not None else ""

    def _uploaded(self, change) -> None:
        files = change["new"]
        if not files:
            return
        item = files[0]
        try:
            path = self.uploads.save(item["name"], item["content"])
        except OSError as exc:
            self.data_status.value = _error(f"the upload could not be kept: {exc}")
            return
        self.uploaded = Source(path.name, path)
        self.upload.value = ()  # the bytes stay in the upload folder only, not in the widget's state too
        option = self._upload_option()
        self.dataset_box.options = [*shipped_names(), option]
        self.dataset_box.value = option
        self._source_changed()

    def _source_changed(self) -> None:
        self.data_status.value = "<span class='mpclr-note'>reading…</span>"
        self._check_data()

    def _check_data(self) -> None:
        self.checker.submit(self._refresh_data)

    def _refresh_data(self) -> None:
        """Bring the data section up to date with the form (on the checker's thread; every request is this
        same task, so the newest one, which replaces those still waiting, does everything they would)."""
        source = self.source()
        if source != self._columns_of:
            try:
                names = source.columns()
            except Exception as exc:
                self._columns_of = None
                self.label_box.options = []
                self._show_data_error(exc)
                return
            self._columns_of = source
            self.label_box.options = names
            self.label_box.value = names[-1]  # the data set's own label; a file's last column
        self._check(source)

    def _check(self, source: Source) -> None:
        """Load the rows as the study will, and check the design against them: what is wrong shows now."""
        label, positive, values = self.label_box.value, self.positive_box.value.strip(), self._values()
        if label is None:
            return
        try:
            data = source.load(label, positive)
        except Exception as exc:
            self._show_data_error(exc)
            self.spec_status.value = ""
            return
        classes = " / ".join(map(str, data.classes)) if data.classes else "0 / 1"
        self.data_status.value = (f"<span class='mpclr-ok'>{html.escape(source.name)}: {data.n_samples} rows × "
                                  f"{data.n_features} features, {data.n_positive} positive (outcome "
                                  f"{html.escape(str(label))}: {html.escape(classes)})</span>")
        try:
            from ..data import check_folds

            self._spec(values)
            check_folds(data, values["folds"])
            self.spec_status.value = ""
        except Exception as exc:
            self.spec_status.value = _error(f"cannot run this design: {readable(exc, self._shown)}")

    def _shown(self, message: str) -> str:
        """A message as the page shows it: the upload's own name; the form's words for the loader's options."""
        return self.uploads.shown(message).replace(
            "pass positive= to name the positive class", "type the positive class into “positive value”").replace(
            "parameter positive=", "positive value ")

    def _show_data_error(self, exc: BaseException) -> None:
        self.data_status.value = _error(readable(exc, self._shown))

    def _hospitals_changed(self, change) -> None:
        all_needed = self.t_box.value >= change["old"]
        self.t_box.max = change["new"]
        self.t_box.value = change["new"] if all_needed else min(self.t_box.value, change["new"])
        self._check_data()

    # ------------------------------------------------------------------------------------------ the study
    def _values(self) -> dict:
        n, t = self.hospitals_box.value, self.t_box.value
        return {"hospitals": n, "threshold": None if t >= n else t, "folds": self.folds_box.value,
                "preset": self.preset_box.value}

    @staticmethod
    def _spec(values: dict):
        from ..spec import StudySpec

        return StudySpec(**values)

    def start(self) -> bool:
        """Start a study with the form as it is now; False (and a notice) while one runs."""
        source, label, values = self.source(), (self.label_box.value, self.positive_box.value.strip()), self._values()
        regression = self.regression_box.value
        started = self.job.start(lambda: self._study(source, label, values, regression))
        if not started:
            self.notice.value = ("<b>A study is already running</b>: this click did not start another. Its "
                                 "progress is below.")
        return started

    def _study(self, source: Source, label: tuple, values: dict, regression: bool) -> None:
        self.notice.value = ""
        self.run_error.value = ""
        self.run_button.description = "Running… (one study at a time)"
        try:
            try:
                spec = self._spec(values)
                data = source.load(*label)
            except Exception as exc:
                self.results.layout.display = "none"  # an earlier study's results would look like this one's
                self.run_error.value = _error(f"The study did not start: {readable(exc, self._shown)}")
                return
            run = StudyRun(data, spec, regression=regression, listener=self._draw_progress, shown=self._shown)
            self.run = run
            self._make_bars(run)
            self._results_shown(progress_only=True)
            ticking = threading.Event()
            threading.Thread(target=self._tick, args=(run, ticking), daemon=True).start()
            try:
                run.run()
            finally:
                ticking.set()
            self._draw_progress(run)
            if run.ok:
                self._show_results(run)
            else:
                phase = run.failed_phase()
                where = f" in phase “{phase.title}”" if phase else ""
                self.run_error.value = _error(f"The study failed{where}: {run.error}")
        finally:
            self.run_button.description = "Run the encrypted study"
            self.notice.value = ""

    def _tick(self, run: StudyRun, stop: threading.Event) -> None:
        """Redraw the running phase's clock every second (phases without finer steps say nothing meanwhile)."""
        while not stop.wait(1.0):
            self._draw_progress(run)

    def _make_bars(self, run: StudyRun) -> None:
        w = self.w
        self.bars = {}
        rows = []
        for key, phase in run.phases.items():
            bar = w.FloatProgress(value=0.0, min=0.0, max=1.0, layout=w.Layout(width="320px"))
            text = w.HTML()
            label = w.HTML(f"<b>{html.escape(phase.title)}</b>", layout=w.Layout(width="320px"))
            self.bars[key] = (bar, text)
            row = w.HBox([label, bar, text])
            row.add_class(f"mpclr-phase-{key}")
            rows.append(row)
        self.progress.children = rows

    def _draw_progress(self, run: StudyRun) -> None:
        for key, phase in run.phases.items():
            if key not in self.bars:
                continue
            bar, text = self.bars[key]
            bar.value = phase.fraction if phase.state != "running" or phase.total else 0.05
            bar.bar_style = {"done": "success", "failed": "danger", "running": "info"}.get(phase.state, "")
            text.value = html.escape(phase.text())

    def _show_results(self, run: StudyRun) -> None:
        record, reg = run.record, run.regression
        mean = auc_mean(record)
        roc = roc_png(record)
        self.roc.value = roc
        self.summary.value = (
            f"<h2>Mean AUC over {record['parameters']['folds']} folds: secure <span class='mpclr-auc-secure'>"
            f"{mean['secure']:.4f}</span>, plaintext twin {mean['twin']:.4f}, scikit-learn {mean['sklearn']:.4f}"
            f"</h2><p>The study took <span class='mpclr-study-seconds'>{run.seconds:.1f}</span> s: "
            + ", ".join(f"{r['phase']} {r['seconds']:.1f} s" for r in timing_rows(record, reg)
                        if r["phase"] != "total" and r["seconds"] >= 0.05)
            + ".</p>" + "".join(f"<p class='mpclr-error'>{html.escape(w)}</p>" for w in run.warnings))
        self.auc_table.value = table_html(auc_rows(record))
        if reg is None:
            self.regression.value = "<p class='mpclr-note'>not asked for</p>"
        else:
            self.regression.value = (f"<p class='mpclr-regression-kind' data-kind='{reg.kind}'>{html.escape(reg.note)}"
                                     f"</p>{frame_html(reg.frame)}")
        views = party_views(record, reg)
        self.parties.value = (
            "<h3>The researcher received (and nothing else)</h3>" + table_html(views["researcher"])
            + "<h3>Each hospital answered, against the study manifest it agreed to</h3>"
            + table_html(views["hospitals"])
            + "<h3>The server received or relayed (ciphertexts and public keys only)</h3>"
            + table_html(views["server"]))
        name = record["data"]["name"]
        self.downloads.value = "<h2>Downloads</h2>" + data_link(
            json.dumps(download_record(record, reg), indent=1).encode(), f"mpclr-study-{name}.json",
            "application/json", "the JSON record", "mpclr-download-json") + data_link(
            report_html(record, reg, roc, run.warnings).encode(), f"mpclr-study-{name}.html", "text/html",
            "the HTML report", "mpclr-download-html")
        self._results_shown()

    def _results_shown(self, progress_only: bool = False) -> None:
        """The progress bars (from the start of a run), then everything else (when it is done)."""
        for child in (self.headline, *self.results.children[1:]):
            child.layout.display = "none" if progress_only else "flex"
        self.results.layout.display = "flex"
