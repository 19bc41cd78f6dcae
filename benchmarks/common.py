"""What every benchmark shares: a description of the machine, and writing results as JSON."""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def machine() -> dict:
    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem = round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    import numpy

    try:
        from importlib.metadata import version

        pyfhel = version("Pyfhel")
    except Exception:  # pragma: no cover
        pyfhel = "?"
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": mem,
        "python": sys.version.split()[0],
        "numpy": numpy.__version__,
        "pyfhel": pyfhel,
        "platform": platform.platform(),
        "load_average": os.getloadavg() if hasattr(os, "getloadavg") else None,
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
    }


def write(name: str, payload: dict) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps({"machine": machine(), **payload}, indent=2, default=float))
    return path


def table(rows: list[dict], columns: list[str]) -> str:
    widths = {c: max(len(c), *(len(_fmt(r.get(c))) for r in rows)) for c in columns}
    lines = ["  ".join(c.ljust(widths[c]) for c in columns), "  ".join("-" * widths[c] for c in columns)]
    for r in rows:
        lines.append("  ".join(_fmt(r.get(c)).ljust(widths[c]) for c in columns))
    return "\n".join(lines)


def _fmt(v) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


class TreeMemory:
    """Peak resident memory of this process and all its descendants (worker processes included), summed,
    sampled in a thread every `interval` seconds from /proc (Linux). A child's shared pages count in
    each process that maps them: the sum errs high. `mark(name)` starts a new phase; `peaks` holds each
    phase's peak in bytes, `peak` the whole run's."""

    def __init__(self, interval: float = 0.1):
        import threading

        self.interval = interval
        self.peaks: dict[str, int] = {}
        self.phase = "start"
        self.peak = 0
        self.at_peak: dict[str, int] = {}  # the whole run's peak: bytes per process ("server", "worker <pid>")
        self.server_peaks: dict[str, int] = {}  # this process alone (the server, and in-process hospitals), per phase
        self._page = os.sysconf("SC_PAGE_SIZE")
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tree-memory", daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self._sample()

    def mark(self, phase: str) -> None:
        self._sample()
        self.phase = phase

    def now(self) -> int:
        return sum(self.processes().values())

    def processes(self) -> dict[str, int]:
        """Resident bytes of every process of the tree right now."""
        parents: dict[int, list[int]] = {}
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    stat = Path(f"/proc/{entry}/stat").read_text()
                except OSError:
                    continue
                ppid = int(stat.rsplit(")", 1)[1].split()[1])
                parents.setdefault(ppid, []).append(int(entry))
        out, todo = {}, [os.getpid()]
        while todo:
            pid = todo.pop()
            try:
                rss = int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * self._page
            except OSError:
                continue
            out["server" if pid == os.getpid() else f"worker {pid}"] = rss
            todo += parents.get(pid, [])
        return out

    def _sample(self) -> None:
        procs = self.processes()
        rss = sum(procs.values())
        if rss > self.peak:
            self.at_peak = procs
        self.peak = max(self.peak, rss)
        self.peaks[self.phase] = max(self.peaks.get(self.phase, 0), rss)
        self.server_peaks[self.phase] = max(self.server_peaks.get(self.phase, 0), procs.get("server", 0))

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()
