"""What the study page shows and hands out, from the study record alone (no widgets): the AUC table beside
the twin and scikit-learn, what each party saw, the ROC figure, the JSON record to download and a
self-contained HTML report. Everything is computed from `mpclr.pipeline.Study.record()`'s record (and the
regression table), so the page, the downloads and a test all read the same numbers.
"""

from __future__ import annotations

import base64
import html
import io
import json
import re

__all__ = ["auc_rows", "auc_mean", "party_views", "roc_png", "figure_png", "download_record", "report_html",
           "data_link", "table_html", "frame_html", "timing_rows"]


def figure_png(fig, dpi: int = 110) -> bytes:
    """A matplotlib figure as PNG bytes; the figure is closed (pyplot keeps no reference to it)."""
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    try:
        fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    finally:
        plt.close(fig)
    return buf.getvalue()


def roc_png(record: dict, dpi: int = 110) -> bytes:
    """The secure ROC curves per fold (mpclr.notebooks.figures.plot_roc, as notebook 04 draws them)."""
    from ..notebooks.figures import plot_roc

    return figure_png(plot_roc(record["secure_evaluation"]["folds"]), dpi)


def auc_mean(record: dict) -> dict[str, float]:
    """The mean AUC over folds: secure (encrypted), twin, scikit-learn."""
    s = record["summary"]
    return {"secure": float(s["encrypted"]["auc"][0]), "twin": float(s["twin"]["auc"][0]),
            "sklearn": float(s["sklearn"]["auc"][0])}


def auc_rows(record: dict) -> list[dict]:
    """Per fold the secure AUC (with its certified bound), the twin's and scikit-learn's, then the means."""
    secure = record.get("secure_evaluation") or {"folds": [{} for _ in record["folds"]]}
    rows = []
    for f, ev in zip(record["folds"], secure["folds"]):
        rows.append({"fold": str(f["fold"]), "test rows": f["n_test"], "secure AUC": f["encrypted"]["auc"],
                     "bound ±": ev.get("auc_bound"), "twin AUC": f["twin"]["auc"],
                     "scikit-learn AUC": f["sklearn"]["auc"]})
    s = record["summary"]
    rows.append({"fold": "mean ± sd", "test rows": sum(f["n_test"] for f in record["folds"]),
                 "secure AUC": _pm(s["encrypted"]["auc"]), "bound ±": None, "twin AUC": _pm(s["twin"]["auc"]),
                 "scikit-learn AUC": _pm(s["sklearn"]["auc"])})
    return rows


def _pm(pair) -> str:
    mean, sd = pair
    return f"{mean:.4f} ± {sd:.4f}" if sd is not None else f"{mean:.4f}"


def timing_rows(record: dict, regression=None) -> list[dict]:
    rows = [{"phase": k.replace("_", " "), "seconds": round(float(v), 2)} for k, v in record["timings_s"].items()]
    if regression is not None:
        rows.append({"phase": "regression table", "seconds": round(regression.seconds, 2)})
    return rows


def _answered_rows(answered: dict, purpose: str) -> list[dict]:
    """Each hospital's ledger {hospital: {"step label": [rounds, ciphertexts, values]}} as rows: one row for a
    request every hospital answered alike (the usual case), else one per hospital."""
    keys = sorted({k for used in answered.values() for k in used})
    rows = []
    for key in keys:
        step, _, label = key.partition(" ")
        counts = {name: tuple(used.get(key, (0, 0, 0))) for name, used in answered.items()}
        same = len(set(counts.values())) == 1
        for name, (rounds, cts, values) in ([("each hospital", next(iter(counts.values())))] if same
                                           else sorted(counts.items())):
            rows.append({"for": purpose, "hospital": name, "request": step, "label": label, "rounds": rounds,
                         "ciphertexts": cts, "values": values})
    return rows


def party_views(record: dict, regression=None) -> dict[str, list[dict]]:
    """What each party saw, from the record: the researcher, every value decrypted for it (label, count,
    by whom, path); each hospital, every request it answered against its manifest (rounds, ciphertexts,
    values); the server, every message type it handled, with what that type reveals."""
    from ..notebooks.roles import describe_traffic

    researcher = [{"for": "study", "what": r["label"], "values": r["values"], "decrypted by": ", ".join(r["by"]),
                   "path": r["path"]} for r in record["revealed"]]
    if regression is not None and regression.revealed:
        got = regression.revealed
        researcher.append({"for": "regression table", "what": f"the pooled GLM's summed information matrix, score and "
                           f"deviance, once per Newton round ({len(got)} rounds)",
                           "values": sum(int(r["values"]) for r in got),
                           "decrypted by": ", ".join(sorted({b for r in got for b in r["by"]})),
                           "path": ", ".join(sorted({r["path"] for r in got}))})
    hospitals = _answered_rows(record.get("answered", {}), "study")
    if regression is not None and regression.answered:
        hospitals += _answered_rows(regression.answered, "regression table")
    server = [{"message": r["message"], "messages": r["messages"], "MB": f"{r['bytes'] / 1e6:.2f}",
               "reveals": r["reveals"]} for r in describe_traffic(record["traffic"])]
    return {"researcher": researcher, "hospitals": hospitals, "server": server}


def _cell(v) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.4f}" if abs(v) < 1e4 else f"{v:.4g}"
    return str(v)


def _td(v) -> str:
    """Numbers to the right, words to the left."""
    text = _cell(v)
    words = isinstance(v, str) and not re.match(r"[-+]?\d", text)
    return f"<td class='mpclr-text'>{html.escape(text)}</td>" if words else f"<td>{html.escape(text)}</td>"


def table_html(rows: list[dict], css: str = "mpclr-table") -> str:
    if not rows:
        return "<p>(none)</p>"
    cols = list(rows[0])
    e = html.escape
    out = [f"<table class='{e(css)}'><thead><tr>" + "".join(f"<th>{e(c)}</th>" for c in cols) + "</tr></thead><tbody>"]
    out += ["<tr>" + "".join(_td(r.get(c)) for c in cols) + "</tr>" for r in rows]
    return "".join(out) + "</tbody></table>"


def frame_html(frame) -> str:
    return frame.to_html(float_format=lambda v: f"{v:.4g}", classes="mpclr-table", border=0)


def download_record(record: dict, regression=None) -> dict:
    """The study record as `mpclr cv --json` writes it, plus what the page added (the regression table)."""
    out = dict(record)
    out["app"] = {"regression_table": None if regression is None else regression.to_json()}
    return out


def data_link(data: bytes, filename: str, mime: str, text: str, css: str) -> str:
    """A download link that carries its file (no server route needed; the browser saves it)."""
    b64 = base64.b64encode(data).decode("ascii")
    e = html.escape
    return (f"<a class='{e(css)}' download='{e(filename)}' href='data:{mime};base64,{b64}' "
            f"style='font-weight:bold;margin-right:2em'>{e(text)}</a>")


_STYLE = ("body{font-family:sans-serif;margin:1.5em;max-width:1100px}table{border-collapse:collapse;font-size:13px;"
          "margin-bottom:1em}td,th{border:1px solid #ccc;padding:3px 6px;text-align:right}"
          "th{background:#eee;text-align:left}td.mpclr-text{text-align:left}img{max-width:600px}.note{color:#444}")


def report_html(record: dict, regression=None, roc: bytes | None = None, warnings=()) -> str:
    """A self-contained HTML report of one study (the ROC figure inline)."""
    e = html.escape
    d, p, sec = record["data"], record["parameters"], record["security"]
    views = party_views(record, regression)
    mean = auc_mean(record)
    parts = [
        f"<!doctype html><meta charset='utf-8'><title>mpclr study: {e(d['name'])}</title><style>{_STYLE}</style>",
        f"<h1>Encrypted cross-validation: {e(d['name'])}</h1>",
        f"<p>{d['rows']} rows × {d['features']} features ({d['positives']} positive), split over {p['hospitals']} "
        f"hospitals {e(str(d['rows_per_hospital']))}; {p['folds']}-fold CV, threshold {p['threshold']} of "
        f"{p['hospitals']}, preset {e(str(p['preset']))} (N = {sec['n']}, {e(str(sec['security']))}); "
        f"created {e(record['created'])} by mpclr {e(record['mpclr'])}.</p>",
        *(f"<p class='note'><b>warning:</b> {e(w)}</p>" for w in warnings),
        f"<h2>AUC: secure {mean['secure']:.4f}, twin {mean['twin']:.4f}, scikit-learn {mean['sklearn']:.4f}</h2>",
        table_html(auc_rows(record)),
    ]
    if roc:
        parts.append(f"<img alt='secure ROC per fold' src='data:image/png;base64,{base64.b64encode(roc).decode()}'>")
    if regression is not None:
        parts += ["<h2>Regression table</h2>", f"<p class='note'>{e(regression.note)}</p>",
                  frame_html(regression.frame)]
    parts += ["<h2>What each party saw</h2>", "<h3>The researcher received</h3>", table_html(views["researcher"]),
              "<h3>Each hospital answered (against its study manifest)</h3>", table_html(views["hospitals"]),
              "<h3>The server received or relayed</h3>", table_html(views["server"]),
              "<h2>Time per phase</h2>", table_html(timing_rows(record, regression)),
              "<h2>Parameters</h2>", table_html([{"parameter": k, "value": json.dumps(v)} for k, v in p.items()])]
    return "\n".join(parts) + "\n"
