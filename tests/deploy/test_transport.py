"""The deployment's coordinator and hospital code over a stand-in Flower Grid (no processes, seconds).

The grid below hands each message to the hospital's ClientApp function (mpclr.deploy.hospital.answer) with
the hospital's node configuration, as a SuperNode would; it can lose a reply, or report a hospital dead, the
way the SuperLink does. The loopback test (test_loopback.py) runs the same code under real Flower.
"""

from __future__ import annotations

import json
import os
import stat
from types import SimpleNamespace

import numpy as np
import pytest

pytest.importorskip("flwr")

from flwr.app import Error, Message  # noqa: E402
from flwr.common.constant import ErrorCode  # noqa: E402
from flwr.supercore.task_identity import TaskIdentity  # noqa: E402

from mpclr.deploy.hospital import HospitalConfig, answer  # noqa: E402
from mpclr.deploy.server_app import DeploymentConfig, run_deployed_study  # noqa: E402
from mpclr.deploy.transport import (  # noqa: E402
    SMALL_FRAME,
    decode_reply,
    decode_request,
    encode_reply,
    encode_request,
)
from mpclr.errors import ParameterError, ProtocolError  # noqa: E402
from mpclr.keystore_crypto import PASSPHRASE_ENV  # noqa: E402
from mpclr.params import get_preset  # noqa: E402
from mpclr.plain.sigmoid import sigmoid_poly  # noqa: E402
from mpclr.roles.policy import Manifest  # noqa: E402
from mpclr.training.encrypted import TrainingPlan  # noqa: E402
from mpclr.training.party import design_rows  # noqa: E402

from ..checks import assert_fold_aucs_close, refresh_flooding  # noqa: E402
from ..training.test_encrypted_training import nesterov_reference  # noqa: E402

SCHEDULE = [[2.0, 0.0], [1.0, 0.0], [0.7, -0.2]]
PASSPHRASE = "the hospitals' passphrase in these tests"


@pytest.fixture(autouse=True)
def keystore_passphrase(monkeypatch):
    """Hospitals encrypt their keystores by default: the tests give the passphrase as a hospital's IT would."""
    monkeypatch.setenv(PASSPHRASE_ENV, PASSPHRASE)


def make_data(n=180, d=3, seed=5):
    g = np.random.default_rng(seed)
    X = g.normal(size=(n, d)) * g.uniform(0.5, 3, d) + g.uniform(-2, 2, d)
    logit = ((X - X.mean(0)) / X.std(0)) @ g.normal(size=d)
    y = (g.uniform(size=n) < 1 / (1 + np.exp(-logit))).astype(int)
    return X, y


def write_hospitals(tmp_path, X, y, n=3):
    """Each hospital's rows in its own CSV file (label last), as a hospital would keep them."""
    configs = []
    for i, rows in enumerate(np.array_split(np.arange(len(y)), n)):
        path = tmp_path / f"hospital-{i + 1}.csv"
        np.savetxt(path, np.column_stack([X[rows], y[rows]]), delimiter=",", fmt="%.10g",
                   header=",".join([f"x{j}" for j in range(X.shape[1])] + ["y"]), comments="")
        configs.append(HospitalConfig(f"hospital-{i + 1}", str(tmp_path / f"keystore-{i + 1}"), str(path)))
    return configs


class FakeGrid:
    """push_messages / pull_messages / get_nodes of a Flower Grid, answered by the hospitals' ClientApp code."""

    def __init__(self, hospitals: list[HospitalConfig]):
        TaskIdentity.run_id, TaskIdentity.node_id, TaskIdentity.task_id = 1, 1, 1
        self.hospitals = {100 + i: s for i, s in enumerate(hospitals)}
        self.inbox: dict[str, Message] = {}
        self.dead: set[str] = set()  # hospital names whose messages get a NODE_UNAVAILABLE reply
        self.lose_next: set[str] = set()  # hospital names whose next reply is replaced by a Flower error once
        self.delivered: list[tuple[str, str]] = []  # (hospital, step)
        self.on_push = None

    def get_nodes(self):
        return [SimpleNamespace(node_id=nid, name=s.name) for nid, s in self.hospitals.items()
                if s.name not in self.dead]

    def push_messages(self, messages):
        ids = []
        for m in messages:
            m.metadata.__dict__["_message_id"] = m.object_id
            self.inbox[m.metadata.message_id] = m
            ids.append(m.metadata.message_id)
        if self.on_push:
            self.on_push(self, messages)
        return ids

    def pull_messages(self, ids):
        out = []
        for mid in list(ids):
            m = self.inbox.pop(mid, None)
            if m is None:
                continue
            hospital = self.hospitals[m.metadata.dst_node_id]
            if hospital.name in self.dead:
                out.append(Message(Error(ErrorCode.NODE_UNAVAILABLE, "no heartbeat"), reply_to=m))
                continue
            reply = answer(m, SimpleNamespace(node_config=_node_config(hospital)))
            self.delivered.append((hospital.name, m.metadata.group_id))
            if hospital.name in self.lose_next:
                self.lose_next.discard(hospital.name)
                reply = Message(Error(ErrorCode.CLIENT_APP_CRASHED, "reply lost"), reply_to=m)
            out.append(reply)
        return out


def _node_config(hospital: HospitalConfig) -> dict:
    return {"hospital-name": hospital.name, "keystore": hospital.keystore, "data": hospital.data,
            "encrypt": hospital.encrypt, "passphrase-file": hospital.passphrase_file}


def study_config(tmp_path, threshold=0, **options):
    return DeploymentConfig(output=str(tmp_path / "out"), hospital_names=["hospital-1", "hospital-2", "hospital-3"],
                       threshold=threshold, preset="train", seed=3, join_timeout=5, round_timeout=30,
                       poll=0.0, max_poll=0.0, options={"folds": 3, "schedule": json.dumps(SCHEDULE), **options})


def reference(study, X, y, schedule=SCHEDULE):
    """The study's training in float64 (tests/training's independent implementation) on the fold ids and the
    scaling the study produced: each hospital drew its folds from its own secret randomness, so no other
    run shares them."""
    plan = TrainingPlan(sigmoid_poly(3, 8.0), [tuple(s) for s in schedule])
    Z = design_rows(X, y, np.asarray(study["mean"]), np.asarray(study["std"]))
    return {**study, "models": nesterov_reference(Z, np.asarray(study["fold_of_row"]), study["folds"], plan).tolist()}


def check_hospital_folds(study, n_hospitals=3, folds=3):
    """Every hospital's fold ids are stratified on its own rows: its fold sizes differ by at most one."""
    f = np.asarray(study["fold_of_row"])
    for rows in np.array_split(np.arange(f.size), n_hospitals):
        sizes = np.bincount(f[rows], minlength=folds)
        assert sizes.max() - sizes.min() <= 1, sizes


@pytest.fixture(scope="module")
def data():
    return make_data()


def test_study_over_the_grid_equals_the_reference(tmp_path, data):
    X, y = data
    grid = FakeGrid(write_hospitals(tmp_path, X, y))
    grid.lose_next.add("hospital-2")  # the first reply from hospital-2 is lost: the request is sent again
    res = run_deployed_study(grid, study_config(tmp_path, workers=0))
    ref = reference(res["study"], X, y)
    assert res["status"] == "ok" and res["unavailable"] == []
    check_hospital_folds(res["study"])
    # against the float64 reference: the weights' tolerance of test_study (10 times one refresh's smudging)
    assert np.abs(np.array(res["study"]["models"]) - np.array(ref["models"])).max() < 10 * refresh_flooding(
        get_preset("train"), 3
    )
    assert_fold_aucs_close(res["study"], ref, X, y, 10 * refresh_flooding(get_preset("train"), 3))
    assert res["network"]["retries"] == 1
    # the evaluation rows are uploaded in the training rows' round (each request gated and budgeted alone)
    assert "lr.encrypt+lr.encrypt_eval" in res["network"]["by_step"]
    # and the evaluation's rotation keys in the training's round (two gkg.share requests, one round)
    assert res["network"]["by_step"]["gkg.share"]["rounds"] == 1
    assert json.loads((tmp_path / "out" / "result.json").read_text())["fingerprint"] == res["fingerprint"]
    assert [s["row_offset"] for s in res["hospitals"]] == [0, 60, 120]
    # the study used exactly its manifest at every hospital (rounds and ciphertexts, budget by budget), as counted
    # before it started from its plan and the rows per fold the hospitals reported (those of the folds it used)
    manifest = Manifest.from_json(res["manifest"])
    budgets = {b.key: [b.rounds, b.ciphertexts] for b in manifest.budgets}
    assert manifest.plan["fold_sizes"] == np.bincount(res["study"]["fold_of_row"]).tolist()
    # every hospital logged the same fingerprint in its keystore, and keeps its secrets private
    for i in (1, 2, 3):
        root = tmp_path / f"keystore-{i}"
        sess = root / "sessions" / res["session"]
        assert json.loads((sess / "site-session.json").read_text())["fingerprint"] == res["fingerprint"]
        used = json.loads((sess / "policy.json").read_text())["used"]
        assert {k: v[:2] for k, v in used.items()} == budgets
        assert stat.S_IMODE(os.stat(root).st_mode) == 0o700
        secrets = [p for p in sess.iterdir() if p.name.startswith("secret-")]
        assert {"secret-key-share.bin", "secret-fold-key.bin"} <= {p.name for p in secrets}
        assert all(stat.S_IMODE(os.stat(p).st_mode) == 0o600 for p in secrets)


def test_a_repeated_request_gets_the_same_reply(tmp_path, data):
    X, y = data
    grid = FakeGrid(write_hospitals(tmp_path, X, y))
    sent = []
    grid.on_push = lambda g, msgs: sent.extend(msgs)
    cfg = study_config(tmp_path)
    cfg.upload = "share-keyed"  # the run config's upload: with upload keys, whatever the study's size
    with pytest.raises(ZeroDivisionError):  # stop right after the key ceremony
        run_deployed_study(grid, cfg, study=lambda fed, cfg: 1 / 0)
    first = sent[-1]  # the last request a hospital answered (the upload keys' round)
    assert first.metadata.group_id == "upk.share"
    hospital = grid.hospitals[first.metadata.dst_node_id]
    again = Message(first.content, dst_node_id=first.metadata.dst_node_id, message_type="query", group_id="x")
    TaskIdentity.run_id = 1
    again.metadata.__dict__["_message_id"] = "retry"
    r1 = answer(again, SimpleNamespace(node_config=_node_config(hospital)))
    r2 = answer(again, SimpleNamespace(node_config=_node_config(hospital)))
    (body1, _, _, cached1), (body2, _, _, cached2) = decode_reply(r1.content), decode_reply(r2.content)
    assert cached1 and cached2 and body1 == body2
    failed = json.loads((tmp_path / "out" / "failed.json").read_text())
    assert failed["phase"] == "study" and not (tmp_path / "out" / "result.json").exists()


def test_two_of_three_goes_on_without_a_dead_hospital(tmp_path, data):
    X, y = data
    grid = FakeGrid(write_hospitals(tmp_path, X, y))

    def kill_during_training(g, msgs):
        if any(m.metadata.group_id == "refresh.share" for m in msgs) and "hospital-3" not in g.dead:
            g.dead.add("hospital-3")
            g.killed_at = len(g.delivered)

    grid.on_push = kill_during_training
    res = run_deployed_study(grid, study_config(tmp_path, threshold=2, workers=0))
    assert res["unavailable"] == ["hospital-3"]
    ref = reference(res["study"], X, y)
    assert np.abs(np.array(res["study"]["models"]) - np.array(ref["models"])).max() < 10 * refresh_flooding(
        get_preset("train"), 3
    )
    assert_fold_aucs_close(res["study"], ref, X, y, 10 * refresh_flooding(get_preset("train"), 3))
    assert "hospital-3" not in {s for s, _ in grid.delivered[grid.killed_at:]}
    assert {"refresh.share", "decrypt.share"} <= {step for _, step in grid.delivered[grid.killed_at:]}


def test_fold_auc_check_allows_only_near_ties_to_swap(data):
    X, y = data
    folds = np.arange(len(y)) % 3
    mean, std = X.mean(0), X.std(0)
    study = {"fold_of_row": folds.tolist(), "mean": mean.tolist(), "std": std.tolist(),
             "models": [[0.1, 1.0, -0.5, 0.3]] * 3}
    nudged = {**study, "models": [[0.1, 1.0 + 1e-9, -0.5, 0.3]] * 3}
    assert_fold_aucs_close(study, nudged, X, y, 1e-6)  # within the tolerance: no pair may swap
    other = {**study, "models": [[0.1, -1.0, 0.5, 0.3]] * 3}
    with pytest.raises(AssertionError, match="fold 0: AUC differs"):
        assert_fold_aucs_close(study, other, X, y, 1e-6)  # far outside it: the AUCs part


def test_three_of_three_stops_with_a_clear_error(tmp_path, data):
    X, y = data
    grid = FakeGrid(write_hospitals(tmp_path, X, y))
    grid.on_push = lambda g, msgs: g.dead.add("hospital-2") if any(
        "lr.encrypt" in m.metadata.group_id.split("+") for m in msgs) else None
    with pytest.raises(ProtocolError, match="hospital-2"):
        run_deployed_study(grid, study_config(tmp_path, workers=0))
    out = tmp_path / "out"
    failed = json.loads((out / "failed.json").read_text())
    assert "hospital-2" in failed["error"] and failed["unavailable"] == ["hospital-2"]
    assert not (out / "result.json").exists()  # nothing half-done is presented as a result


def test_a_hospital_refuses_a_session_without_its_key(tmp_path, data):
    X, y = data
    hospitals = write_hospitals(tmp_path, X, y)
    grid = FakeGrid(hospitals)
    import mpclr.deploy.server_app as sa

    real = sa.bootstrap

    def tampered(net, found, cfg, note, *study):
        found["hospital-1"]["identity"] = "00" * 64  # the coordinator puts another key under hospital-1
        return real(net, found, cfg, note, *study)

    sa.bootstrap = tampered
    try:
        with pytest.raises(ProtocolError, match="roster does not hold this hospital's identity"):
            run_deployed_study(grid, study_config(tmp_path))
    finally:
        sa.bootstrap = real


def test_hospital_configuration_errors_name_the_problem(tmp_path, data):
    X, y = data
    hospitals = write_hospitals(tmp_path, X, y)
    hospitals[1] = HospitalConfig("hospital-2", hospitals[1].keystore, str(tmp_path / "missing.csv"))
    grid = FakeGrid(hospitals)
    with pytest.raises(ProtocolError, match="hospital-2.*missing.csv"):
        run_deployed_study(grid, study_config(tmp_path))


@pytest.mark.parametrize(
    "change,match",
    [
        ({"preset": "fast"}, r"parameter preset: 'fast' cannot run a whole study: .*use preset 'train' instead"),
        ({"options": {"folds": 3, "decrypt_model": False}}, r"'decrypt_model' is not an option of the study"),
        ({"options": {"schedule": json.dumps(SCHEDULE), "iterations": 4}}, "with an explicit schedule they"),
        ({"options": {"evaluation": "decrypted"}}, "evaluation must be 'secure' or 'none'"),
        ({"options": {"decrypt-models": "maybe"}}, "decrypt-models must be true or false"),
    ],
)
def test_the_default_study_refuses_what_it_cannot_run_before_contacting_a_hospital(tmp_path, data, change, match):
    X, y = data
    grid = FakeGrid(write_hospitals(tmp_path, X, y))
    cfg = study_config(tmp_path)
    for k, v in change.items():
        setattr(cfg, k, v)
    with pytest.raises(ParameterError, match=match):
        run_deployed_study(grid, cfg)
    assert grid.delivered == []  # not even a hello
    assert json.loads((tmp_path / "out" / "failed.json").read_text())["phase"] == "setup"


def test_a_deployed_study_can_keep_its_models_encrypted(tmp_path, data):
    X, y = data
    grid = FakeGrid(write_hospitals(tmp_path, X, y))
    res = run_deployed_study(grid, study_config(tmp_path, workers=0, evaluation="none", **{"decrypt-models": False}))
    study = res["study"]
    assert study["models"] is None and study["decrypt_models"] is False and study["secure_evaluation"] is None
    # the researcher received the pooled aggregate that sets the scaling, nothing else
    assert [r["label"] for r in study["revealed"]] == ["pooled count, sums and cross-products"]
    assert sorted(hospital for hospital, step in grid.delivered if step == "decrypt.share") == [
        "hospital-1", "hospital-2", "hospital-3"]  # one decryption round: the aggregate's


@pytest.mark.parametrize("size", [0, 100, SMALL_FRAME, 3 * SMALL_FRAME])
def test_a_message_is_one_frame_in_as_few_flower_objects_as_it_can_be(size):
    """Each object of a Flower message is an HTTP request for its sender and its reader: a small frame is one
    ConfigRecord value (3 objects with the Message), a large one an ArrayRecord alone (5 with one chunk)."""
    from flwr.supercore.inflatable.inflatable_object import get_all_nested_objects
    from flwr.supercore.inflatable.inflatable_utils import inflate_object_from_contents

    body = os.urandom(size)

    def carried(content):  # as the reader gets it: every object deflated, then inflated
        objects = get_all_nested_objects(content)
        assert len(objects) == (2 if size + 100 < SMALL_FRAME else 4)
        return inflate_object_from_contents(content.object_id, {k: v.deflate() for k, v in objects.items()})

    assert decode_request(carried(encode_request("protocol", body, "ab12"))) == ("protocol", "ab12", body)
    assert decode_reply(carried(encode_reply(body, seconds=1.5, cached=True))) == (body, "", 1.5, True)
    assert decode_reply(encode_reply(error="hospital x: no")) == (b"", "hospital x: no", 0.0, False)
