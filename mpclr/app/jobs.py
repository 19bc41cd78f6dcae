"""Work off the kernel's main thread, so that a page stays live while the cryptography runs.

A widget callback runs on the kernel's main thread, which also reads the page's messages: a callback that
computes for a minute leaves every other click of that page waiting for that minute. So the pages hand
their work to one background thread each and return at once; the thread reports progress by setting
widget values, which ipywidgets sends from any thread.

`Job` runs one task at a time and refuses another while one runs (the study: a second click must not
start a second study). `Latest` runs one at a time too, but keeps the newest request that arrived
meanwhile and runs it next (the workshop: moving a slider five times redraws for the last position, once).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

__all__ = ["Job", "Latest"]


class Job:
    """One task at a time on a daemon thread. `start` returns False, and starts nothing, while a task
    runs. The task's exception, if any, is kept in `error` (the task reports its own failures; this is
    only the last resort, so that nothing is lost silently)."""

    def __init__(self, name: str = "mpclr-job"):
        self.name = name
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self.started: float | None = None
        self.finished: float | None = None
        self.error: BaseException | None = None
        self.runs = 0  # tasks started so far

    @property
    def busy(self) -> bool:
        with self._lock:
            return self._thread is not None and self._thread.is_alive()

    def start(self, task: Callable[[], object]) -> bool:
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                return False
            self.started, self.finished, self.error = time.time(), None, None
            self.runs += 1
            self._thread = threading.Thread(target=self._run, args=(task,), name=self.name, daemon=True)
            self._thread.start()
            return True

    def _run(self, task) -> None:
        try:
            task()
        except BaseException as exc:  # kept for whoever looks: never lost silently
            self.error = exc
        finally:
            self.finished = time.time()

    def wait(self, timeout: float | None = None) -> bool:
        """Whether the running task (if any) finished within `timeout` seconds."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
            return not thread.is_alive()
        return True


class Latest:
    """Runs requests one at a time on a daemon thread; a request that arrives while one runs replaces any
    other still waiting, so only the newest waiting one runs next. `on_error(exc)` hears a failed request."""

    def __init__(self, on_error: Callable[[BaseException], None] | None = None, name: str = "mpclr-latest"):
        self._cond = threading.Condition()
        self._pending: Callable[[], object] | None = None
        self._running = False
        self._on_error = on_error
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    def submit(self, task: Callable[[], object]) -> None:
        with self._cond:
            self._pending = task
            self._cond.notify()

    @property
    def pending(self) -> bool:
        """Whether a request waits to run after the one running now."""
        with self._cond:
            return self._pending is not None

    @property
    def idle(self) -> bool:
        with self._cond:
            return self._pending is None and not self._running

    def wait_idle(self, timeout: float = 60.0) -> bool:
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._pending is not None or self._running:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
            return True

    def _loop(self) -> None:
        while True:
            with self._cond:
                while self._pending is None:
                    self._cond.wait()
                task, self._pending, self._running = self._pending, None, True
            try:
                task()
            except BaseException as exc:  # reported to the page by on_error
                if self._on_error is not None:
                    self._on_error(exc)
            finally:
                with self._cond:
                    self._running = False
                    self._cond.notify_all()
