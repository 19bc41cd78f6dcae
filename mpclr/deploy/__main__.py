"""python -m mpclr.deploy {local, hospital, keystore, certs, keys, app}: see docs/deployment.md."""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path


def _local(args) -> int:
    import numpy as np

    from .. import data as mdata
    from ..errors import ParameterError
    from ..params import check_study_preset
    from .local import HospitalSpec, LocalDeployment, StudyFailed
    from .study import fold_aucs

    n = args.hospitals
    try:
        check_study_preset(args.preset, n)  # before anything starts (the coordinator checks again)
    except ParameterError as exc:
        print(f"mpclr.deploy local: {exc}", file=sys.stderr)
        return 2
    hospitals = [HospitalSpec(f"hospital-{i + 1}", args.data, f"{i + 1}/{n}") for i in range(n)]
    work = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="mpclr-deploy-"))
    print(f"mpclr local deployment in {work}: SuperLink + {n} SuperNodes on 127.0.0.1 (TLS, SuperNode "
          f"authentication, telemetry off), data {args.data!r} split across the hospitals")
    config = {"preset": args.preset, "threshold": args.threshold, "folds": args.folds, "seed": args.seed}
    dep = LocalDeployment(work, hospitals, mode=args.mode)
    try:
        dep.start()
        print(f"started in {dep.timings['start']:.1f} s; running the study ...")
        try:
            res = dep.run_study(config, on_progress=lambda e: print(f"  {e['t']:7.1f} s  {e['event']}"
                                                               + (f" {e.get('done')}/{e.get('total')}"
                                                                  if e['event'] == 'training' else "")))
        except StudyFailed as exc:
            print(f"study failed: {exc}", file=sys.stderr)
            return 1
    finally:
        dep.stop()
        print("stopped every process the deployment started")
    ds = mdata.load(args.data)
    aucs = fold_aucs(res["study"], ds.X, ds.y)
    net = res["network"]
    print(f"\nsession fingerprint {res['fingerprint']} ({res['threshold']}-of-{n}, preset {res['preset']})")
    print("seconds: " + ", ".join(f"{k} {v:.1f}" for k, v in res["seconds"].items()))
    print("study:   " + ", ".join(f"{k} {v:.1f}" for k, v in res["study"]["seconds"].items()))
    print(f"{net['rounds']} Flower rounds; per-round overhead median {net['overhead_median'] * 1000:.0f} ms, "
          f"mean {net['overhead_mean'] * 1000:.0f} ms")
    for hospital, b in res["bytes_per_hospital"].items():
        print(f"  {hospital}: sent {b['sent'] / 1e6:.1f} MB, received {b['received'] / 1e6:.1f} MB")
    print("per-fold test AUC of the decrypted models (computed here, where this demo holds every hospital's rows): "
          + " ".join(f"{a:.3f}" for a in aucs) + f"  (mean {np.mean(aucs):.3f})")
    secure = res["study"].get("secure_evaluation")
    if secure:
        print("per-fold test AUC, secure evaluation (the researcher received only counts): "
              + " ".join(f"{f['auc']:.3f}" for f in secure["folds"])
              + f"  (mean {secure['summary']['auc']['mean']:.3f}; {secure['revealed_values']} values revealed)")
    if args.json:
        Path(args.json).write_text(json.dumps({**res, "aucs": aucs}, indent=1))
    return 0


def _hospital(args) -> int:
    from .supernode import run_hospital

    if args.command == "site":
        print("mpclr.deploy: `site` is now called `hospital` (python -m mpclr.deploy hospital --config ...)",
              file=sys.stderr)

    run_hospital(args.config)
    return 0


def _keystore(args) -> int:
    from . import keystore_admin as ka

    if bool(args.config) == bool(args.path):
        print("keystore: give either --config hospital.toml or the keystore folder", file=sys.stderr)
        return 2
    if args.config:
        from .supernode import hospital_config

        root = Path(hospital_config(args.config)[0].keystore)
    else:
        root = Path(args.path)
    try:
        if args.action == "list":
            inv = ka.inventory(root)
            print(json.dumps(inv, indent=1) if args.json else ka.format_inventory(inv))
        elif args.action == "backup":
            res = ka.backup(root, args.output)
            print(f"wrote {res['archive']} ({res['files']} files, {res['bytes'] / 1e6:.2f} MB, mode 0600). "
                  + ("The secret files in it are encrypted: a restored copy needs the keystore's passphrase. "
                     "The public files in it are readable by whoever holds the archive."
                     if res["encrypted"] else "THE KEYSTORE IS NOT ENCRYPTED: the archive holds its secrets in the "
                     "clear; keep it as you would the keys themselves.")
                  + f"\nRestore: mkdir -m 700 {root} && tar -xpf {res['archive']} -C {root}")
        else:
            what = ka.session_folder(root, args.session) if args.session else root
            if not args.yes:
                print(ka.format_inventory(ka.inventory(what)))
                print(f"\nnothing removed: add --yes to destroy {what} (secret files overwritten, then everything "
                      "unlinked; this cannot be undone)", file=sys.stderr)
                return 2
            res = ka.destroy(root, args.session)
            print(f"destroyed {res['removed']}: {res['overwritten']} secret files overwritten with random bytes and "
                  f"synced, {res['unlinked']} files unlinked (see docs/deployment.md for what this does not "
                  "guarantee on SSDs and copy-on-write file systems)")
    except ka.KeystoreAdminError as exc:
        print(f"keystore {args.action}: {exc}", file=sys.stderr)
        return 2
    return 0


def _certs(args) -> int:
    from .certs import make_ca, make_server_cert

    folder = Path(args.folder)
    if not (folder / "ca.crt").exists():
        make_ca(folder)
    cert, key = make_server_cert(folder, hosts=args.hosts, name="superlink")
    print(f"CA: {folder / 'ca.crt'} (give to every hospital), {folder / 'ca.key'} (keep offline)\n"
          f"SuperLink: {cert}, {key}")
    return 0


def _keys(args) -> int:
    from .certs import make_node_keys

    private, public = make_node_keys(Path(args.folder), "supernode-key")
    print(f"private key {private} (stays here, 0600); public key {public}: send it to the coordinator")
    return 0


def _app(args) -> int:
    from .appdir import write_app

    print(write_app(args.folder))
    return 0


def main(argv=None) -> int:
    from ..params import add_preset_argument

    p = argparse.ArgumentParser(prog="python -m mpclr.deploy", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    loc = sub.add_parser("local", help="SuperLink + n hospitals on 127.0.0.1, one study, then stop everything")
    loc.add_argument("--hospitals", "--sites", dest="hospitals", type=int, metavar="N", default=3,
                     help="hospitals, one SuperNode each (default 3); --sites is the older name")
    loc.add_argument("--threshold", type=int, default=0, help="t of t-out-of-n (default n)")
    add_preset_argument(loc)  # the local deployment runs the default study
    loc.add_argument("--data", default="breast_cancer")
    loc.add_argument("--folds", type=int, default=5)
    loc.add_argument("--seed", type=int, default=0)
    loc.add_argument("--mode", choices=["tuned", "flower"], default="tuned")
    loc.add_argument("--workdir", help="keep certificates, keystores and logs here (default: a new temp folder)")
    loc.add_argument("--json", help="also write the result to this file")
    loc.set_defaults(func=_local)
    hospital = sub.add_parser("hospital", aliases=["site"],
                              help="run this hospital's SuperNode (TLS + node authentication); `site`: its older name")
    hospital.add_argument("--config", required=True)
    hospital.set_defaults(func=_hospital)
    ks = sub.add_parser("keystore", help="list, back up or destroy a hospital's keystore (its node's state)")
    ks_sub = ks.add_subparsers(dest="action", required=True)
    for action, text in (("list", "sessions, files, sizes, what each holds, whether encrypted"),
                         ("backup", "one tar archive of the keystore (encrypted files stay encrypted)"),
                         ("destroy", "overwrite the secret files and remove a session or the whole keystore")):
        a = ks_sub.add_parser(action, help=text)
        a.add_argument("path", nargs="?", help="the keystore folder (or give --config)")
        a.add_argument("--config", help="the hospital's configuration (hospital.toml): its [hospital] keystore")
        if action == "list":
            a.add_argument("--json", action="store_true", help="print the inventory as JSON")
        if action == "backup":
            a.add_argument("--output", required=True, help="the archive to write (.tar)")
        if action == "destroy":
            a.add_argument("--session", help="only this session (its id, or its first 8+ hex characters)")
            a.add_argument("--yes", action="store_true", help="confirm: without it nothing is removed")
        a.set_defaults(func=_keystore)
    certs = sub.add_parser("certs", help="a CA and the SuperLink's TLS certificate")
    certs.add_argument("folder")
    certs.add_argument("--hosts", nargs="+", default=["127.0.0.1", "localhost"],
                       help="every name and address the hospitals use to reach the SuperLink")
    certs.set_defaults(func=_certs)
    keys = sub.add_parser("keys", help="a hospital's SuperNode authentication key pair")
    keys.add_argument("folder")
    keys.set_defaults(func=_keys)
    app = sub.add_parser("app", help="write the Flower app folder used by `flwr run`")
    app.add_argument("folder")
    app.set_defaults(func=_app)
    args = p.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
