"""One study run for the study page, phase by phase, without widgets (tested on its own).

The stages are mpclr.pipeline.Study's, the same that `mpclr cv` runs; this adds what a page needs around
them: the state of every phase (waiting, running with done/total, done in s, failed), a listener told of
every change (the page redraws its progress bars from it, on the worker thread), privacy warnings kept to
show, the regression table, and a failure kept as one readable sentence instead of a traceback.
"""

from __future__ import annotations

import time
import traceback
import warnings
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass

from ..errors import MpclrError, PrivacyWarning

__all__ = ["PHASES", "Phase", "StudyRun", "readable"]

PHASES = (
    ("prepare", "key ceremony"),
    ("encrypt", "encryption of the hospitals' rows"),
    ("train", "encrypted training"),
    ("evaluate", "secure evaluation"),
    ("references", "plaintext twin and scikit-learn"),
    ("regression", "regression table"),
)


@dataclass
class Phase:
    key: str
    title: str
    state: str = "waiting"  # waiting, running, done, failed
    done: int = 0
    total: int = 0  # 0: no finer steps known
    seconds: float | None = None
    started: float | None = None

    @property
    def fraction(self) -> float:
        if self.state == "done":
            return 1.0
        return self.done / self.total if self.total else 0.0

    def text(self) -> str:
        if self.state == "done":
            return f"done in {self.seconds:.1f} s"
        if self.state == "failed":
            return "failed"
        if self.state == "running":
            steps = f"{self.done} of {self.total}, " if self.total else ""
            return f"{steps}{time.perf_counter() - self.started:.0f} s"
        return "waiting"


def readable(exc: BaseException, shown: Callable[[str], str] = str) -> str:
    """A failure as one sentence: mpclr's own errors already name the file, row, column or parameter; any
    other error gets its type and the place it came from."""
    if isinstance(exc, MpclrError):
        return shown(str(exc))
    where = traceback.extract_tb(exc.__traceback__)[-1] if exc.__traceback__ else None
    at = f" (at {where.filename.rsplit('/', 1)[-1]}:{where.lineno})" if where else ""
    return shown(f"{type(exc).__name__}: {exc}{at}")


class StudyRun:
    """Run `spec` on `dataset` (a mpclr Dataset) through every stage, then the regression table.

    listener(run) is called after every change of a phase, from the thread that runs the study."""

    def __init__(self, dataset, spec, *, regression: bool = True, listener: Callable[[StudyRun], None] | None = None,
                 shown: Callable[[str], str] = str):
        self.dataset, self.spec, self.with_regression = dataset, spec, regression
        self.phases = {key: Phase(key, title) for key, title in PHASES}
        if not regression:
            del self.phases["regression"]
        self.listener = listener or (lambda run: None)
        self.shown = shown
        self.record: dict | None = None
        self.regression = None
        self.error: str | None = None
        self.warnings: list[str] = []
        self.seconds: float | None = None

    @property
    def ok(self) -> bool:
        return self.record is not None and self.error is None

    @contextmanager
    def _phase(self, key: str):
        ph = self.phases[key]
        ph.state, ph.started = "running", time.perf_counter()
        self.listener(self)

        def step(done: int, total: int) -> None:
            ph.done, ph.total = int(done), int(total)
            self.listener(self)

        try:
            yield step
        except BaseException:
            ph.state, ph.seconds = "failed", time.perf_counter() - ph.started
            raise
        ph.state, ph.seconds = "done", time.perf_counter() - ph.started
        self.listener(self)

    def run(self) -> bool:
        """Every phase in order; True when the record is there. A failure stops the run and is kept in
        `error` (the failed phase says where)."""
        from ..pipeline import Study

        t0 = time.perf_counter()
        study = Study(self.spec)
        with warnings.catch_warnings(record=True) as caught:  # the page shows them, as mpclr cv prints them
            warnings.simplefilter("always", PrivacyWarning)
            try:
                try:
                    with self._phase("prepare"):
                        study.prepare(self.dataset)
                    with self._phase("encrypt"):
                        study.encrypt()
                    with self._phase("train") as step:
                        study.train(progress=step)
                    with self._phase("evaluate") as step:
                        study.evaluate(progress=step)
                    with self._phase("references"):
                        study.references()
                    record = study.record()
                finally:
                    study.close()
                if self.with_regression:
                    from .regression import regression_table

                    with self._phase("regression"):
                        self.regression = regression_table(study, record)
                self.record = record
            except Exception as exc:
                self.error = readable(exc, self.shown)
            finally:
                self.warnings = list(dict.fromkeys(str(w.message) for w in caught
                                                   if issubclass(w.category, PrivacyWarning)))
                self.seconds = time.perf_counter() - t0
                self.listener(self)
        return self.ok

    def failed_phase(self) -> Phase | None:
        return next((p for p in self.phases.values() if p.state == "failed"), None)
