"""Command line: `mpclr demo` (the README's main job), `mpclr cv` (batch runs of a study), `mpclr batch`
(the notebook sequence over a grid of parameters), `mpclr glm` (a pooled GLM, mpclr.stats), `mpclr app` (the
workshop and study pages in the browser, mpclr.app)."""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path

from .notebooks.batch import add_batch_parser
from .params import add_preset_argument


def _progress_bar(total_label: str):
    """A tqdm bar on stderr (text when not in a notebook); a callback for the trainer."""
    from tqdm.auto import tqdm

    bar = None

    def update(done: int, total: int) -> None:
        nonlocal bar
        if bar is None:
            bar = tqdm(total=total, desc=total_label, unit="iteration", file=sys.stderr, leave=False)
        bar.n = done
        bar.refresh()
        if done == total:
            bar.close()

    return update


def _table(record: dict) -> str:
    rows = [("", "AUC", "accuracy")]
    for who in ("encrypted", "twin", "sklearn"):
        s = record["summary"][who]
        rows.append(
            (who, f"{s['auc'][0]:.4f} +/- {s['auc'][1]:.4f}", f"{s['accuracy'][0]:.4f} +/- {s['accuracy'][1]:.4f}")
        )
    width = [max(len(r[i]) for r in rows) for i in range(3)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, width)) for r in rows]
    lines.insert(1, "  ".join("-" * w for w in width))
    return "\n".join(lines)


def _table_one_text(t: dict) -> list[str]:
    """The record's Table 1 as text columns: variable, what, then one column per class shown."""
    heads = [f"{'Overall' if c == 'overall' else c} (n={t['sizes'][c]})" for c in t["columns"]]
    rows = [("", "", *heads)]
    last = None
    for r in t["rows"]:
        rows.append(("" if r["variable"] == last else r["variable"], r["what"], *(r[c] for c in t["columns"])))
        last = r["variable"]
    width = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, width)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in width))
    return [f"Table 1 by {t['by']} (secure: only pooled values decrypted)", *lines, *t["notes"]]


def _report(record: dict) -> str:
    p, d, t = record["parameters"], record["data"], record["timings_s"]
    auc_gap = max(abs(f["encrypted"]["auc"] - f["twin"]["auc"]) for f in record["folds"])
    sec = record["security"]
    out = [
        f"data {d['name']}: {d['rows']} rows x {d['features']} features, {d['positives']} positive, "
        f"split over {p['hospitals']} hospitals {d['rows_per_hospital']}",
        f"{p['folds']}-fold CV, {p['iterations']} iterations, sigmoid degree {p['degree']}, "
        f"preset {sec['name']} (N={sec['n']}, log2 QP={sec['log_qp']}, {sec['security']}), "
        f"threshold {p['threshold']} of {p['hospitals']}",
        "",
        *([*_table_one_text(record["table_one"]), ""] if record.get("table_one") else []),
        _table(record),
        "",
        "per fold AUC   "
        + "  ".join(f"{f['encrypted']['auc']:.4f}" for f in record["folds"])
        + f"   (max |encrypted - twin| {auc_gap:.4f})",
        "weights: "
        + (
            f"max |encrypted - twin| = {record['weights']['max_abs_diff_encrypted_twin']:.2e}"
            if record["weights"]["encrypted"] is not None
            else "kept encrypted"
        ),
        "time (s): " + ", ".join(f"{k} {v:.1f}" for k, v in t.items()),
        f"traffic: {record['traffic']['total_bytes'] / 1e6:.0f} MB; metrics from: {record['evaluation_path']}",
    ]
    return "\n".join(out)


def _privacy_warnings_on_stderr():
    """A warnings.showwarning that prints a PrivacyWarning as one `mpclr: warning:` line, as it is raised
    (before the study runs, not after), and passes every other warning on."""
    from .errors import PrivacyWarning

    passed_on = warnings.showwarning

    def show(message, category, filename, lineno, file=None, line=None):
        if issubclass(category, PrivacyWarning):
            print(f"mpclr: warning: {message}", file=sys.stderr)
        else:
            passed_on(message, category, filename, lineno, file, line)

    return show


def _run(args, data) -> int:
    from .errors import PrivacyWarning
    from .pipeline import run_cv
    from .spec import StudySpec

    spec = StudySpec.from_cli_args(args)
    progress = None if args.quiet else _progress_bar("encrypted training")
    with warnings.catch_warnings():
        warnings.simplefilter("always", PrivacyWarning)
        warnings.showwarning = _privacy_warnings_on_stderr()
        record = run_cv(data, spec, progress=progress)
    print(_report(record))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(record, indent=1))
        print(f"written {args.json}")
    return 0


def _cv(args) -> int:
    from .data import load, load_csv

    if args.synthetic:
        if args.data:
            raise SystemExit("mpclr cv: give DATA or --synthetic NxD, not both")
        data = load(f"synthetic:{args.synthetic}", seed=args.seed)
    elif args.data is None:
        raise SystemExit("mpclr cv: give a data set (a file, breast_cancer, edin, ...) or --synthetic NxD")
    elif Path(args.data).exists():
        label = int(args.label) if args.label.lstrip("-").isdigit() else args.label
        data = load_csv(args.data, label=label)
    else:
        data = load(args.data)
    return _run(args, data)


def _demo(args) -> int:
    """The README's main job: encrypted 5-fold CV on scikit-learn's breast-cancer data, 3 hospitals."""
    from .data import load_breast_cancer

    return _run(args, load_breast_cancer())


def _study_arguments(p: argparse.ArgumentParser, folds: int) -> None:
    p.add_argument("--hospitals", "--parties", dest="hospitals", type=int, metavar="N", default=3,
                   help="hospitals (each a key holder), default 3; --parties is the older name")
    p.add_argument("--threshold", type=int, default=None, help="t for t-out-of-n (default: n)")
    p.add_argument("--folds", type=int, default=folds, help=f"cross-validation folds (default {folds})")
    p.add_argument("--iterations", type=int, default=None, help="Nesterov iterations (default: the twin's, 6)")
    p.add_argument("--degree", type=int, default=None, choices=(3, 5, 7), help="sigmoid polynomial degree (default 5)")
    p.add_argument("--learning-rate", type=float, default=None, help="step in units of 1/(c1 curvature) (default 1)")
    p.add_argument("--seed", type=int, default=0, help="public randomness: split, synthetic data (default 0)")
    add_preset_argument(p)
    p.add_argument("--split", default="even", help="how rows are split over hospitals: even, or a column name")
    p.add_argument(
        "--evaluation",
        default="secure",
        choices=("secure", "decrypted-models"),
        help="secure: encrypted scores, only counts revealed (default); decrypted-models: decrypt the "
        "fold models and score in the clear",
    )
    p.add_argument(
        "--keep-models-encrypted",
        action="store_true",
        help="do not decrypt the fold models (then no weight comparison with the twin)",
    )
    p.add_argument(
        "--score-bound",
        type=float,
        default=None,
        help="public bound on |score| for the secure evaluation's comparisons (default 16)",
    )
    p.add_argument(
        "--no-table-one",
        action="store_true",
        help="no secure Table 1 (counts, means and SDs by the label, small cells suppressed) before training",
    )
    p.add_argument("--json", metavar="OUT", help="write the full study record here")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mpclr", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="encrypted 5-fold CV on the embedded breast-cancer data, 3 hospitals")
    _study_arguments(demo, folds=5)
    demo.set_defaults(func=_demo)
    cv = sub.add_parser("cv", help="encrypted x-fold cross-validation of a data set, beside the twin and scikit-learn")
    cv.add_argument("data", nargs="?", help="a CSV/TSV file, or breast_cancer, edin, lbw, pcs, uis")
    cv.add_argument("--label", default="last", help="label column of a file: last, first, an index or a name")
    cv.add_argument("--synthetic", metavar="NxD", help="a seeded synthetic data set instead, e.g. 49152x10")
    _study_arguments(cv, folds=10)
    cv.set_defaults(func=_cv)
    add_batch_parser(sub)
    from .stats.cli import add_glm_parser

    add_glm_parser(sub)
    from .app.server import add_app_parser

    add_app_parser(sub)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except Exception as exc:  # clear one-line errors for the command line
        from .errors import MpclrError

        if isinstance(exc, MpclrError):
            print(f"mpclr: error: {exc}", file=sys.stderr)
            return 2
        raise


if __name__ == "__main__":
    sys.exit(main())
