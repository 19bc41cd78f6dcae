"""The app's workshop page (notebooks/app/workshop.ipynb): notebook 90's lesson as a page for a room.

n and t at the top; four tabs: the key ceremony step by step (who holds what after each step, what each
message carries and what this federation sent), who decrypts (toggle hospitals: the values or noise),
smudging against precision, noise by depth. All of it runs the real protocols through mpclr.workshop (its
Demo federations, decryptions and plots); nothing here simulates them. Every computation runs on one
background thread (jobs.Latest): the page answers while a key ceremony runs, and five quick slider moves
make one federation, for the last position.
"""

from __future__ import annotations

import html

from .. import workshop
from ..params import get_preset
from . import ceremony
from .jobs import Latest
from .look import header, image, set_image
from .results import table_html

__all__ = ["WorkshopPage"]

PRESET = "fast"  # the teaching preset: N = 8192, key ceremonies in a fraction of a second
SWEEP_BITS = (0, 8, 16, 24, 32)
DEPTH_SCALES = (25, 30, 40)


class WorkshopPage:
    def __init__(self, hospitals: int = 3, threshold: int | None = None):
        import ipywidgets as widgets

        self.w = widgets
        self.worker = Latest(on_error=self._failed, name="mpclr-workshop")
        wide = {"description_width": "initial"}
        big = widgets.Layout(width="420px")
        self.n_box = widgets.IntSlider(value=hospitals, min=2, max=7, description="n hospitals", style=wide, layout=big)
        self.t_box = widgets.IntSlider(value=threshold or hospitals, min=1, max=hospitals,
                                       description="t needed to decrypt", style=wide, layout=big)
        self.busy = widgets.HTML()
        self.error = widgets.HTML()
        self.step = 0
        self.step_title = widgets.HTML()
        self.step_body = widgets.HTML()
        auto = widgets.Layout(width="auto")
        self.prev_button = widgets.Button(description="◀ previous step", layout=auto)
        self.next_button = widgets.Button(description="next step ▶", button_style="primary", layout=auto)
        self.who_box = widgets.HBox()
        self.status = widgets.HTML()
        self.status.add_class("mpclr-decrypt-status")
        self.decrypt_img = image()
        self.partial_img = image()
        self.smudge_box = widgets.IntSlider(value=int(get_preset(PRESET).smudging_bits), min=0, max=36,
                                            description="smudging log2 σ", style=wide, layout=big)
        self.smudge_status = widgets.HTML()
        self.sweep_button = widgets.Button(description=f"sweep σ = 2^{', 2^'.join(map(str, SWEEP_BITS))}", layout=auto)
        self.sweep_img = image(max_width="800px")
        self.depth_button = widgets.Button(description="measure noise by depth", layout=auto)
        self.depth_img = image()
        self.depth_table = widgets.HTML()
        self.demo = None

        self.n_box.observe(self._on_n, "value")
        self.t_box.observe(lambda _: self._rebuild(), "value")
        self.prev_button.on_click(lambda _: self._move(-1))
        self.next_button.on_click(lambda _: self._move(+1))
        self.smudge_box.observe(lambda _: self._submit(self._smudge), "value")
        self.sweep_button.on_click(lambda _: self._submit(self._sweep))
        self.depth_button.on_click(lambda _: self._submit(self._depth))
        self._make_toggles(hospitals)
        self._rebuild()

    # ------------------------------------------------------------------------------------------ layout
    def view(self):
        w = self.w
        tabs = w.Tab(children=[
            w.VBox([w.HBox([self.prev_button, self.next_button]), self.step_title, self.step_body]),
            w.VBox([w.HTML("<p>Toggle the hospitals that send a partial decryption of hospital-1's values "
                           "(dashed line) to the researcher.</p>"), self.who_box, self.status, self.decrypt_img,
                    w.HTML("<h3>What one partial decryption looks like</h3>"), self.partial_img]),
            w.VBox([w.HTML("<p>Each partial decryption adds Gaussian noise of deviation σ, which hides the "
                           "ciphertext's own noise (a function of the secret key) from the researcher. It costs "
                           "precision: the scale here is 2^30.</p>"), self.smudge_box, self.smudge_status,
                    self.sweep_button, self.sweep_img]),
            w.VBox([w.HTML("<p>Each product of ciphertexts spends one prime of the modulus; rescaling keeps the "
                           "error near 2^-scale. A larger scale is more precise and leaves fewer levels.</p>"),
                    self.depth_button, self.depth_img, self.depth_table]),
        ])
        for i, title in enumerate(("1 · Key ceremony", "2 · Who decrypts", "3 · Smudging vs precision",
                                   "4 · Noise by depth")):
            tabs.set_title(i, title)
        page = w.VBox([
            w.HTML(header("workshop", "Threshold encryption, hands on",
                          "Hospitals each hold one share of a secret key that nobody holds. Choose how many "
                          "hospitals (n) and how many must cooperate to decrypt (t). Every step below runs the "
                          "real protocols.")),
            w.HBox([self.n_box, self.t_box]), self.busy, self.error, tabs])
        page.add_class("mpclr-page")
        page.add_class("mpclr-workshop")
        return page

    def show(self):
        from IPython.display import display

        display(self.view())

    # ------------------------------------------------------------------------------------------ state
    def _threshold(self) -> int | None:
        t, n = self.t_box.value, self.n_box.value
        return None if t >= n else t

    def _who(self) -> list[int]:
        return [i for i, tb in enumerate(self.who_box.children) if tb.value]

    def _make_toggles(self, n: int) -> None:
        toggles = [self.w.ToggleButton(value=True, description=f"hospital-{i + 1}", button_style="success",
                                       tooltip="sends its partial decryption") for i in range(n)]

        def toggled(change):
            change["owner"].button_style = "success" if change["new"] else ""
            self._submit(self._decrypt)

        for tb in toggles:
            tb.observe(toggled, "value")
        self.who_box.children = toggles

    def _on_n(self, change) -> None:
        old, new = change["old"], change["new"]
        all_needed = self.t_box.value >= old
        self.t_box.max = new
        self.t_box.value = new if all_needed else min(self.t_box.value, new)
        self._make_toggles(new)
        self._rebuild()

    def _submit(self, task) -> None:
        """Run `task` with the controls as they are now, on the page's worker; say so while it runs."""
        n, t, who, smudge = self.n_box.value, self._threshold(), self._who(), self.smudge_box.value
        self.busy.value = "<span class='mpclr-note'>working…</span>"

        def run():
            task(n, t, who, smudge)
            if not self.worker.pending:
                self.busy.value = ""

        self.worker.submit(run)

    def _failed(self, exc: BaseException) -> None:
        self.busy.value = ""
        self.error.value = f"<div class='mpclr-error'><b>{type(exc).__name__}</b>: {html.escape(str(exc))}</div>"

    def _rebuild(self) -> None:
        self._submit(self._federation)

    # ------------------------------------------------------------------------------------------ work
    def _federation(self, n, t, who, smudge) -> None:
        self.error.value = ""
        self.demo = workshop.cached_demo(n, t, PRESET)
        self._draw_step()
        self._decrypt(n, t, who, smudge)
        set_image(self.partial_img, workshop.plot_partial(self.demo.partial_view(0)))
        self._smudge(n, t, who, smudge)

    def _move(self, by: int) -> None:
        count = len(ceremony.steps(self._threshold() is not None))
        self.step = max(0, min(count - 1, self.step + by))
        self._submit(lambda *controls: self._draw_step())

    def _draw_step(self) -> None:
        n, t = self.n_box.value, self._threshold()
        all_steps = ceremony.steps(t is not None)
        self.step = min(self.step, len(all_steps) - 1)
        step = all_steps[self.step]
        names = [f"hospital-{i + 1}" for i in range(n)]
        needed = n if t is None else t
        demo = self.demo
        traffic = demo.fed.traffic() if demo is not None and demo.hospitals == n and demo.needed == needed else None
        self.prev_button.disabled = self.step == 0
        self.next_button.disabled = self.step == len(all_steps) - 1
        self.step_title.value = (f"<h2>{html.escape(step.title)} <span class='mpclr-note'>(step {self.step + 1} of "
                                 f"{len(all_steps)}; n = {n}, t = {needed})</span></h2>")
        body = [f"<p>{html.escape(step.explain)}</p>",
                ceremony.holdings_html(ceremony.holdings(step.key, names, t is not None), names)]
        if step.messages:
            body += ["<h3>Messages of this step</h3>", table_html(ceremony.step_messages(step, traffic))]
        self.step_body.value = "".join(body)

    def _decrypt(self, n, t, who, smudge) -> None:
        dec = workshop.explore(n, t, who, preset=PRESET)
        set_image(self.decrypt_img, workshop.plot_decryption(dec))
        self.status.value = f"<b>{html.escape(dec.summary())}</b>"  # last: the picture above is this one

    def _smudge(self, n, t, who, smudge) -> None:
        bits = None if smudge == get_preset(PRESET).smudging_bits else float(smudge)  # the same federation
        dec = workshop.explore(n, t, None, smudging_bits=bits, preset=PRESET)
        self.smudge_status.value = (f"<b>σ = 2^{smudge}: every key holder decrypts; max error "
                                    f"{dec.max_error:.1e}</b> ({'correct' if dec.correct else 'too imprecise'})")

    def _sweep(self, n, t, who, smudge) -> None:
        set_image(self.sweep_img, workshop.plot_sweep(workshop.smudging_sweep(SWEEP_BITS, n, PRESET)))

    def _depth(self, n, t, who, smudge) -> None:
        by_scale = workshop.noise_by_depth(DEPTH_SCALES, n, PRESET)
        set_image(self.depth_img, workshop.plot_noise(by_scale))
        rows = [{"scale": f"2^{bits}", "depth": r["depth"], "level": r["level"],
                 "modulus bits": f"{r['modulus_bits']:.1f}", "max error": f"{r['max_error']:.1e}"}
                for bits, rs in by_scale.items() for r in rs]
        self.depth_table.value = table_html(rows)
