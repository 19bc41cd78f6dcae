"""A hospital's policy gate (mpclr.roles.policy): what it agreed to (pinned parameters, the study manifest),
what it refuses beyond that, and the audit log of everything it answered or refused.

The misbehaving coordinator is played here by the tests: a hospital offered weakened parameters, an
exploration manifest, requests beyond the manifest; in process, a study with a manifest one round short.
(The cryptographic checks inside the handlers are in tests/test_misbehaving_coordinator.py.)
"""

from __future__ import annotations

import base64
import dataclasses
import json
import os
import re
import stat
from types import SimpleNamespace

import numpy as np
import pytest

import mpclr
from mpclr.data import load, split
from mpclr.deploy.hospital import (
    HospitalConfig,
    HospitalFailure,
    HospitalRuntime,
    accepted_for_studies,
    params_from_json,
    params_to_json,
)
from mpclr.errors import FormatError, MpclrError, ProtocolError
from mpclr.federation import seal_context
from mpclr.keystore_crypto import PASSPHRASE_ENV
from mpclr.manifest import study_manifest
from mpclr.params import PRESETS, Params
from mpclr.pipeline import run_cv, study_manifest_for, study_plan
from mpclr.roles.node import Session
from mpclr.roles.policy import Budget, Manifest, Policy, PolicyRefusal, merge_manifests
from mpclr.spec import StudySpec
from mpclr.stats.manifest import glm_manifest

# a small study's or one with no study plan: public-key uploads, no upload keys (upk.share) to answer
CEREMONY = ["crs.commit", "crs.reveal", "crs.seed", "cpk.commit", "cpk.reveal", "keys.install", "rlk.round1",
            "rlk.check", "rlk.round2"]
RECORD_KEYS = {"time", "session", "hospital", "step", "label", "requester", "bytes_in", "bytes_out", "ciphertexts",
               "decision", "reason"}


# ================================================================ unsafe parameters
def _changed(value):
    """A value of the same kind that differs."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, int | float):
        return value + 1
    if isinstance(value, str):
        return value + "x"
    if isinstance(value, list | tuple):
        return [*value[:-1], value[-1] - 1]
    raise AssertionError(f"no change for {value!r}")


@pytest.mark.parametrize("field", [f.name for f in dataclasses.fields(Params) if f.name != "allow_insecure"])
def test_a_hospital_refuses_any_field_differing_from_its_preset(field):
    proposal = params_to_json(PRESETS["train"].with_(upload="public-key"))  # as the coordinator resolves it
    proposal[field] = _changed(proposal[field])
    with pytest.raises(MpclrError, match=rf"parameter {field} = |unknown|built-in presets"):
        params_from_json(proposal)


@pytest.mark.parametrize("change", [{"smudging_bits": 0}, {"refresh_mask_bits": 1}, {"smudging_bits": True},
                                    {"allow_insecure": True}, {"extra": 1}])
def test_a_hospital_refuses_unsafe_parameters(change):
    proposal = {**params_to_json(PRESETS["train"].with_(upload="public-key")), **change}
    with pytest.raises(MpclrError, match=r"smudging_bits|refresh_mask_bits|insecure|does not know"):
        params_from_json(proposal)
    for preset in PRESETS.values():  # the study presets themselves, unchanged, are accepted; no other
        if accepted_for_studies(preset, 3):  # with the coordinator's resolved upload mode
            assert params_from_json(params_to_json(preset.with_(upload="public-key")), 3) == \
                preset.with_(upload="public-key")
        else:
            with pytest.raises(MpclrError, match=rf"refuses the session: parameter preset: '{preset.name}' cannot run"):
                params_from_json(params_to_json(preset), 3)
    assert [p.name for p in PRESETS.values() if accepted_for_studies(p)] == ["train"]


@pytest.mark.parametrize("preset,hospitals,why", [("fast", 2, "it is a teaching preset"),
                                                  ("deep", 2, "it is an experiments preset"),
                                                  ("train", 11, "sized for up to 10 hospitals")])
def test_a_hospital_refuses_at_join_parameters_that_fail_the_study_check(tmp_path, preset, hospitals, why):
    """The study check (mpclr.params.check_study_preset), which the coordinator, the CLI and the notebooks
    run, is the hospital's own too: a coordinator that skipped it is refused at join, and the hospital logs why."""
    hospital = _hospital(tmp_path)
    with pytest.raises(MpclrError, match=rf"refuses the session: parameter preset: '{preset}' cannot run a whole "
                                         rf"study: .*{why}"):
        hospital.handle("join", "", _join_body(hospital, Manifest.keys_only(), PRESETS[preset], hospitals))
    last = json.loads((tmp_path / "keystore-hospital-1" / "audit.jsonl").read_text().splitlines()[-1])
    assert (last["step"], last["decision"]) == ("join", "refused") and why in last["reason"]
    assert not (tmp_path / "keystore-hospital-1" / "sessions").exists()  # nothing drawn, nothing kept


def test_every_parameter_field_is_in_the_fingerprint():
    base = PRESETS["fast"]
    assert seal_context(base.with_(refresh_mask_bits=41)).fingerprint != seal_context(base).fingerprint
    assert seal_context(base.with_(description="other")).fingerprint != seal_context(base).fingerprint
    keyed, public = seal_context(base.with_(upload="share-keyed")), seal_context(base.with_(upload="public-key"))
    assert keyed.fingerprint != public.fingerprint != seal_context(base).fingerprint
    assert keyed._context_bytes is public._context_bytes  # one SEAL context for the two modes


@pytest.mark.parametrize("mode", ["share-keyed", "public-key"])
def test_a_hospital_takes_the_coordinators_concrete_upload_mode(mode):
    got = params_from_json({**params_to_json(PRESETS["train"]), "upload": mode}, 3)
    assert got.upload == mode and got == PRESETS["train"].with_(upload=mode)
    assert params_from_json({**params_to_json(PRESETS["train"]), "upload": "public-key"}, 3, share_keyed=False).upload \
        == "public-key"


@pytest.mark.parametrize("upload,share_keyed,why", [
    ("auto", True, r"parameter upload = 'auto' is unresolved"),
    ("plain", True, r"parameter upload = 'plain' is not a mode this hospital runs"),
    (None, True, r"parameter upload = None is not a mode"),
    ("share-keyed", False, r"parameter upload = 'share-keyed': .* accepts only public-key uploads "
                           r"\(share-keyed-uploads = false\)"),
])
def test_a_hospital_refuses_an_unresolved_unknown_or_unwanted_upload_mode(upload, share_keyed, why):
    with pytest.raises(HospitalFailure, match=why):
        params_from_json({**params_to_json(PRESETS["train"]), "upload": upload}, 3, share_keyed)


def test_a_hospital_configured_for_public_key_uploads_refuses_a_share_keyed_session(tmp_path):
    assert HospitalConfig.from_mapping({"hospital-name": "h", "keystore": "k", "data": "d"}).share_keyed_uploads
    config = HospitalConfig.from_mapping({"hospital-name": "hospital-1", "keystore": str(tmp_path / "ks"),
                                          "data": "breast_cancer", "share-keyed-uploads": "false"})
    assert not config.share_keyed_uploads and "share-keyed-uploads=false" in config.node_config()
    with pytest.raises(HospitalFailure, match="share-keyed-uploads must be true or false"):
        HospitalConfig.from_mapping({"hospital-name": "h", "keystore": "k", "data": "d", "share-keyed-uploads": "x"})
    hospital = HospitalRuntime(config)
    body = _join_body(hospital, Manifest.keys_only(), PRESETS["train"].with_(upload="share-keyed"))
    with pytest.raises(MpclrError, match="accepts only public-key uploads"):
        hospital.handle("join", "", body)
    assert json.loads(hospital.handle("join", "", _join_body(hospital, Manifest.keys_only()))[0])["fingerprint"]


def test_a_hospital_refuses_a_manifest_planning_another_upload_mode(tmp_path):
    hospital = _hospital(tmp_path)
    m = Manifest("study", Manifest.keys_only().budgets, plan={"upload": "share-keyed"})
    with pytest.raises(MpclrError, match="manifest plans share-keyed uploads, the proposed parameter set public-key"):
        hospital.handle("join", "", _join_body(hospital, m))


# ================================================================ the manifest at a hospital
@pytest.fixture(autouse=True)
def keystore_passphrase(monkeypatch):
    """Hospitals encrypt their keystores by default: the tests give the passphrase as a hospital's IT would."""
    monkeypatch.setenv(PASSPHRASE_ENV, "the hospitals' passphrase in these tests")


def _hospital(tmp_path, name="hospital-1"):
    X = np.random.default_rng(1).normal(size=(60, 3))
    y = (X[:, 0] > 0).astype(int)
    path = tmp_path / f"{name}.csv"
    np.savetxt(path, np.column_stack([X, y]), delimiter=",", fmt="%.8g", header="a,b,c,y", comments="")
    return HospitalRuntime(HospitalConfig(name, str(tmp_path / f"keystore-{name}"), str(path)))


def _join_body(hospital, manifest, params=None, hospitals=2) -> bytes:
    hello = json.loads(hospital.handle("hello", "", b"{}")[0])
    params = params or PRESETS["train"].with_(upload="public-key")  # as a coordinator resolves "auto"
    others = [f"hospital-{i}" for i in range(2, hospitals + 1)]
    roster = {"server": b"s" * 64, "researcher": b"r" * 64, hello["hospital"]: bytes.fromhex(hello["identity"]),
              **{name: bytes([i]) * 64 for i, name in enumerate(others)}}
    session = Session(os.urandom(16), seal_context(params).fingerprint, roster, (hello["hospital"], *others), 2,
                      "server", "researcher", manifest.digest)
    return json.dumps({"session": session.to_json(), "params": params_to_json(params), "row_offset": 0,
                       "rows": hello["rows"], "manifest": manifest.to_json()}).encode()


def test_a_hospital_never_accepts_an_exploration_manifest(tmp_path):
    hospital = _hospital(tmp_path)
    with pytest.raises(MpclrError, match="exploration manifest"):
        hospital.handle("join", "", _join_body(hospital, Manifest.exploration_only()))
    keys = Manifest.keys_only()
    body = json.loads(_join_body(hospital, keys))
    body["session"]["manifest"] = Manifest.exploration_only().digest.hex()  # a session naming another manifest
    with pytest.raises(MpclrError, match="another study manifest"):
        hospital.handle("join", "", json.dumps(body).encode())
    assert json.loads(hospital.handle("join", "", _join_body(hospital, keys))[0])["fingerprint"]
    log = [json.loads(line) for line in (tmp_path / "keystore-hospital-1" / "audit.jsonl").read_text().splitlines()]
    assert [(r["step"], r["decision"]) for r in log] == [
        ("hello", "answered"), ("join", "refused"), ("hello", "answered"), ("join", "refused"), ("hello", "answered"),
        ("join", "answered")]
    assert "exploration manifest" in log[1]["reason"] and keys.fingerprint in log[-1]["reason"]
    assert all(set(r) == RECORD_KEYS for r in log)


def test_a_hospital_refuses_weakened_parameters_at_join_and_logs_it(tmp_path):
    hospital = _hospital(tmp_path)
    weak = PRESETS["train"].with_(smudging_bits=0)
    with pytest.raises(MpclrError, match=r"smudging_bits = 0.0 differs from preset train's 29.0"):
        hospital.handle("join", "", _join_body(hospital, Manifest.keys_only(), weak))
    last = json.loads((tmp_path / "keystore-hospital-1" / "audit.jsonl").read_text().splitlines()[-1])
    assert last["step"] == "join" and last["decision"] == "refused" and "smudging_bits" in last["reason"]


def test_a_deployed_hospital_answers_the_key_ceremony_only_without_a_study_manifest(tmp_path):
    """A study hook that declares no manifest: the hospitals agree to the key ceremony only, and refuse the
    study's first request, naming it; every request is in each hospital's audit log."""
    pytest.importorskip("flwr")
    from mpclr.deploy.server_app import run_deployed_study

    from .deploy.test_transport import FakeGrid, make_data, study_config, write_hospitals

    X, y = make_data()
    hospitals = write_hospitals(tmp_path, X, y)
    grid = FakeGrid(hospitals)

    def study(fed, config):
        from mpclr.training.cv import encrypt_study

        return encrypt_study(fed, folds=3)

    with pytest.raises(ProtocolError, match=r"refuses lr.folds '' from server: not in the study manifest 'key "
                                            r"ceremony only'"):
        run_deployed_study(grid, study_config(tmp_path), study=study)
    for hospital in hospitals:
        log = [json.loads(line) for line in (tmp_path / f"keystore-{hospital.name[-1]}" / "audit.jsonl").open()]
        steps = [(r["step"], r["decision"]) for r in log]
        assert steps[:2] == [("hello", "answered"), ("join", "answered")]
        assert [s for s, d in steps[2:] if d == "answered"] == CEREMONY
        assert steps[-1] == ("lr.folds", "refused") and log[-1]["requester"] == "server"
        # every request, answered or not: a Flower message carrying several (a sequence, as lr.folds with
        # lr.aggregate) has each logged on its own; after a refusal the rest of its sequence goes unanswered
        sent = [step.split("+") for s, step in grid.delivered if s == hospital.name]
        assert len(log) == sum(len(parts) for parts in sent[:-1]) + 1
        assert sent[-1] == ["lr.folds", "lr.aggregate"]


def test_a_deployed_table_one_round_short_is_refused_at_that_round(tmp_path):
    """table_one (like pooled_glm) declares its manifest: the hospitals agree to it at join (that the study's
    requests fit it exactly is in tests/deploy/test_stats_deploy.py). A coordinator whose manifest allows one
    refresh fewer than the secure small-cell test needs is refused at that refresh, which carries the
    table's label, by every hospital, naming the step, the label and the budget."""
    pytest.importorskip("flwr")
    from mpclr.deploy.server_app import run_deployed_study
    from mpclr.stats.deploy import table_one

    from .deploy.test_transport import FakeGrid, make_data, study_config, write_hospitals

    X, y = make_data()
    hospitals = write_hospitals(tmp_path, X, y)
    options = {"continuous": "x0,x1"}
    info = SimpleNamespace(names=[s.name for s in hospitals], params=PRESETS["train"], threshold=3, min_cells=[5] * 3)
    rounds = table_one.manifest(info, options).budget_for("refresh.share", "table1").rounds - 1

    def short(fed, config):
        return table_one(fed, config)

    short.check_config = table_one.check_config
    short.manifest = lambda info, config: table_one.manifest(info, config).with_budget("refresh.share", "table1",
                                                                                        rounds=rounds)
    with pytest.raises(ProtocolError, match=rf"refuses refresh.share 'table1#{rounds + 1}' from server: beyond the "
                                            rf"study manifest 'Table 1' .*budget 'refresh.share table1' allows "
                                            rf"{rounds} rounds? \({rounds} answered\)"):
        run_deployed_study(FakeGrid(hospitals), dataclasses.replace(study_config(tmp_path), options=options),
                           study=short)
    for i in (1, 2, 3):
        log = [json.loads(line) for line in (tmp_path / f"keystore-{i}" / "audit.jsonl").open()]
        assert sum(r["step"] == "refresh.share" and r["decision"] == "answered" for r in log) == rounds
        assert (log[-1]["step"], log[-1]["label"], log[-1]["decision"]) == ("refresh.share", f"table1#{rounds + 1}",
                                                                            "refused")
        assert f"allows {rounds} round" in log[-1]["reason"]


# ================================================================ the manifest in process
def test_the_default_federation_answers_the_key_ceremony_only(tmp_path):
    fed = mpclr.Federation(hospitals=2, preset="fast", rotations=[1])
    c = fed.hospitals[0].encrypt([1.0, 2.0])
    with pytest.raises(ProtocolError, match=r"refuses decrypt.share 'x' from researcher: not in the study manifest "
                                            r"'key ceremony only'"):
        fed.decrypt(c, label="x")
    with pytest.raises(ProtocolError, match=r"refuses refresh.share 'refresh#1'"):
        fed.refresh(c)
    fed.close()
    fed = mpclr.Federation(hospitals=2, preset="fast", manifest="exploration")
    assert np.allclose(fed.decrypt(fed.hospitals[0].encrypt([1.0, 2.0])), [1.0, 2.0], atol=1e-3)
    fed.close()


def test_policy_budgets_and_retries():
    m = Manifest("t", (Budget("refresh.share", "train", 2, 5, 3),), retries=1)
    p = Policy(m)
    ask = {"c1": [b"x"] * 3, "label": "train/update#1"}
    p.settle(p.admit("h", "refresh.share", "server", ask), True)
    p.settle(p.admit("h", "refresh.share", "server", ask), False)  # refused by its handler: nothing counted
    assert p.used["refresh.share train"] == [1, 3, 0]
    with pytest.raises(PolicyRefusal, match="at most 3"):
        p.admit("h", "refresh.share", "server", {**ask, "c1": [b"x"] * 4})
    p.settle(p.admit("h", "refresh.share", "server", {**ask, "c1": [b"x"] * 2}), True)
    retry = p.admit("h", "refresh.share", "server", ask)  # beyond the budget: the retry allowance
    assert retry.retry and p.settle(retry, True).endswith("retry round 1 of 1")
    with pytest.raises(PolicyRefusal, match=r"budget 'refresh.share train' allows 2 rounds \(2 answered\), 5 "
                                            r"ciphertexts \(5 answered\), and the 1 retry rounds are used up"):
        p.admit("h", "refresh.share", "server", ask)
    with pytest.raises(PolicyRefusal, match="not in the study manifest"):
        p.admit("h", "refresh.share", "server", {**ask, "label": "evaluation/x#3"})
    again = Manifest.from_json(json.loads(json.dumps(m.to_json())))
    assert again == m and again.digest == m.digest


def test_merged_manifests_keep_each_part_s_budgets_and_refuse_one_in_two_parts():
    cv = Manifest("cv", (*Manifest.keys_only().budgets, Budget("decrypt.share", "fold models", 1, 1, 1)), retries=2)
    stats = glm_manifest(3, 4, ceremony=False)
    both = merge_manifests("study", cv, stats)
    assert both.budgets == cv.budgets + stats.budgets and both.retries == 2
    assert [p["part"] for p in both.plan["parts"]] == ["cv", "pooled GLM"]
    assert both.budget_for("decrypt.share", "glm: iteration 3") == stats.budget_for("decrypt.share", "glm")
    with pytest.raises(FormatError, match=r"the parts 'cv' and 'pooled GLM' both budget 'crs.commit'"):
        merge_manifests("study", cv, glm_manifest(3, 4))  # the key ceremony twice
    with pytest.raises(FormatError, match="only study manifests merge"):
        merge_manifests("study", cv, Manifest.exploration_only())


SMALL = StudySpec(hospitals=3, folds=3, iterations=3, degree=3, seed=4, preset="train")


@pytest.fixture(scope="module")
def small_data():
    return load("synthetic:240x3", seed=4)


def _agreement(data, spec=SMALL):
    """The manifest run_cv's hospitals agree to, as a function of them (each counts its rows per fold)."""
    parts = split(data, spec.hospitals, spec.split, seed=spec.seed)
    return study_manifest_for(spec, parts, data.n_features)


def _answered(records, manifest) -> dict[str, list[int]]:
    """Rounds and ciphertexts answered per budget, from an audit log."""
    out = {}
    for r in records:
        if r["decision"] == "answered":
            b = manifest.budget_for(r["step"], r["label"])
            used = out.setdefault(b.key, [0, 0])
            used[0] += 1
            used[1] += r["ciphertexts"]
    return out


def test_a_study_uses_exactly_its_manifest_and_every_request_is_logged(small_data, tmp_path):
    record = run_cv(small_data, SMALL, audit_dir=tmp_path)
    manifest = Manifest.from_json(record["manifest"])
    # the manifest run_cv agreed is the one computed from the study's plan, with the rows per fold the hospitals
    # counted before the study: those of the folds the study then assigned
    sizes = [f["n_test"] for f in record["folds"]]
    plan = study_plan(SMALL, small_data.n_samples, small_data.n_features, sizes)
    assert manifest == study_manifest(plan)
    budgets = {b.key: [b.rounds, b.ciphertexts] for b in manifest.budgets}
    assert any(k.startswith("refresh.share evaluation/comparisons") for k in budgets)
    for name in ("hospital-1", "hospital-2", "hospital-3"):
        records = [json.loads(line) for line in (tmp_path / name / "audit.jsonl").open()]
        assert all(set(r) == RECORD_KEYS and r["hospital"] == name for r in records)
        assert all(r["decision"] == "answered" for r in records)
        assert _answered(records, manifest) == budgets  # exactly, budget by budget
        assert {k: v[:2] for k, v in record["answered"][name].items()} == budgets
    # the study itself ran: its secure AUC is the twin's, which scikit-learn's is close to
    summary = record["summary"]
    assert abs(summary["encrypted"]["auc"][0] - summary["twin"]["auc"][0]) < 0.01
    assert abs(summary["twin"]["auc"][0] - summary["sklearn"]["auc"][0]) < 0.05


def test_a_training_that_unpacks_at_its_last_refresh_stays_inside_its_manifest(small_data, monkeypatch):
    """Folds that fill a lane (paper scale; forced here) with the unpacking on: the training packs 4 features, its
    last refresh outputs one ciphertext per feature. Every hospital answers exactly the manifest's budgets
    (refresh inputs: one per chunk; the fold models: one ciphertext per feature)."""
    from mpclr.training import layout as training_layout

    monkeypatch.setattr(training_layout, "segments_for", lambda *args: 1)
    monkeypatch.setattr(training_layout, "TRAIN_SEGMENTS", 4)
    spec = dataclasses.replace(SMALL, evaluation="decrypted-models")
    fed = mpclr.Federation(hospitals=3, preset="train", seed=spec.seed, manifest=_agreement(small_data, spec))
    manifest = fed.manifest
    # one group (240 rows fit one block): the 4 columns side by side in one chunk, trained as 4 ciphertexts
    assert manifest.budget_for("refresh.share", "training/update").ciphertexts == spec.iterations + 1
    assert manifest.budget_for("decrypt.share", "fold models").ciphertexts == 4
    record = run_cv(small_data, spec, fed=fed)
    fed.close()
    budgets = {b.key: [b.rounds, b.ciphertexts] for b in manifest.budgets}
    for name in ("hospital-1", "hospital-2", "hospital-3"):
        assert {k: v[:2] for k, v in record["answered"][name].items()} == budgets
    assert abs(record["summary"]["encrypted"]["auc"][0] - record["summary"]["twin"]["auc"][0]) < 0.01


def test_refreshes_inside_the_gradient_are_counted_exactly():
    """With a degree-7 sigmoid the levels of `train` run out inside an iteration: each of two worker engines
    asks for refreshes of its own blocks, each its own round in process; the manifest counts them."""
    data = load("synthetic:3000x4", seed=1)
    config = StudySpec(hospitals=3, folds=5, iterations=3, degree=7, preset="train", workers=2,
                       evaluation="decrypted-models")
    fed = mpclr.Federation(hospitals=3, preset="train", seed=config.seed, manifest=_agreement(data, config))
    manifest = fed.manifest
    gradient = manifest.budget_for("refresh.share", "training/gradient")
    assert gradient is not None and gradient.rounds > 0
    record = run_cv(data, config, fed=fed)
    fed.close()
    budgets = {b.key: [b.rounds, b.ciphertexts] for b in manifest.budgets}
    for name in ("hospital-1", "hospital-2", "hospital-3"):
        assert {k: v[:2] for k, v in record["answered"][name].items()} == budgets
    assert record["training"]["workers"] == 2


def test_a_manifest_one_round_short_is_refused_at_that_round(small_data, tmp_path):
    agree = _agreement(small_data)

    def short(hospitals):
        full = agree(hospitals)
        return full.with_budget("refresh.share", "training/update",
                                rounds=full.budget_for("refresh.share", "training/update").rounds - 1)

    fed = mpclr.Federation(hospitals=3, preset="train", seed=SMALL.seed, manifest=short, audit_dir=tmp_path)
    rounds = fed.manifest.budget_for("refresh.share", "training/update").rounds + 1
    with pytest.raises(ProtocolError, match=rf"refuses refresh.share 'training/update#{rounds}' from server: beyond "
                                            rf"the study manifest .* budget 'refresh.share training/update' allows "
                                            rf"{rounds - 1} rounds \({rounds - 1} answered\)"):
        run_cv(small_data, SMALL, fed=fed)
    fed.close()
    last = [json.loads(line) for line in (tmp_path / "hospital-2" / "audit.jsonl").open()][-1]
    assert (last["step"], last["label"], last["decision"]) == ("refresh.share", f"training/update#{rounds}", "refused")
    assert f"allows {rounds - 1} rounds" in last["reason"]


# ================================================================ the audit log
def test_the_audit_log_survives_a_restart_and_keeps_the_ledger(tmp_path):
    once = Manifest("one decryption", (*Manifest.keys_only().budgets, Budget("decrypt.share", "result", 1, 1, 1)))
    fed = mpclr.Federation(hospitals=2, preset="fast", manifest=once)
    c = fed.hospitals[0].encrypt([3.0, 4.0])
    assert np.allclose(fed.decrypt(c, label="result"), [3.0, 4.0], atol=1e-3)
    before = len(fed.hospitals[0].policy.log.records())
    fed.save(tmp_path / "fed")  # the records kept in memory go to each hospital's keystore folder
    log = tmp_path / "fed" / "nodes" / "hospital-1" / "audit.jsonl"
    assert len(log.read_text().splitlines()) == before
    fed.close()
    again = mpclr.Federation.load(tmp_path / "fed")  # the server kept c in its store
    with pytest.raises(ProtocolError, match=r"allows 1 round \(1 answered\)"):  # the ledger survived too
        again.decrypt(c, label="result")
    records = [json.loads(line) for line in log.open()]
    assert len(records) == before + 1 and records[-1]["decision"] == "refused"
    assert [r["step"] for r in records[:before]].count("decrypt.share") == 1
    assert sum(again.hospitals[0].handler_calls.values()) == 0  # the restarted node answered nothing
    again.close()


def test_the_audit_log_holds_no_secret(tmp_path):
    fed = mpclr.Federation(hospitals=3, threshold=2, preset="fast", manifest="exploration",
                           audit_dir=tmp_path / "audit")
    c = fed.hospitals[0].encrypt([1.0])
    fed.decrypt(c, by=[0, 2], label="check")
    fed.refresh(c)
    fed.save(tmp_path / "fed")
    for p in fed.hospitals:
        text = (tmp_path / "audit" / p.name / "audit.jsonl").read_bytes()
        records = [json.loads(line) for line in text.splitlines()]
        assert len(records) == sum(p.handler_calls.values())  # every request it answered, nothing else
        assert stat.S_IMODE(os.stat(tmp_path / "audit" / p.name / "audit.jsonl").st_mode) & 0o007 == 0
        secrets = [f.read_bytes() for f in (tmp_path / "fed" / "nodes" / p.name).glob("secret-*.bin")]
        assert len(secrets) >= 3  # identity, key share, threshold share
        for secret in secrets:
            for start in range(0, len(secret) - 12, 97):
                piece = secret[start : start + 12]
                for form in (piece, piece.hex().encode(), base64.b64encode(piece)[:12]):
                    assert form not in text
        assert not re.search(rb"[0-9a-f]{96}", text)  # no long hex blob of any kind (the session id has 32)
    fed.close()


def test_a_refusal_by_a_hospital_s_own_check_is_logged_with_its_reason(tmp_path):
    """A request inside the manifest that a handler's own check refuses (mpclr.roles.guard: a c1 answered
    before) is in the audit log as refused, with the check's reason, and takes nothing from the budget."""
    from mpclr.protocols.decryption import ThresholdDecryption
    from mpclr.seal.format import CiphertextData

    m = Manifest("two decryptions", (*Manifest.keys_only().budgets, Budget("decrypt.share", "result", 2, 2, 1, 2)))
    fed = mpclr.Federation(hospitals=2, preset="fast", manifest=m, audit_dir=tmp_path)
    c = fed.hospitals[0].encrypt([1.0])
    got = fed.researcher.call("server", "ct.fetch", id=c.id, level=0)
    c1 = ThresholdDecryption(fed.ctx).c1_to_bytes(CiphertextData.from_bytes(got["ciphertext"]).data[1], 0)
    ask = {"c1": c1, "level": 0, "participants": ["hospital-1", "hospital-2"], "label": "result", "values": 1}
    fed.researcher.call("hospital-1", "decrypt.share", **ask)
    with pytest.raises(ProtocolError, match="hospital-1 refused decrypt.share: .*answered before"):
        fed.researcher.call("hospital-1", "decrypt.share", **ask)  # the same c1 again, not re-randomized
    records = [json.loads(line) for line in (tmp_path / "hospital-1" / "audit.jsonl").open()]
    assert [r["step"] for r in records if r["decision"] == "answered"] == [*CEREMONY, "decrypt.share"]
    last = records[-1]
    assert (last["step"], last["label"], last["requester"], last["decision"]) == (
        "decrypt.share", "result", "researcher", "refused")
    assert "answered before" in last["reason"] and last["ciphertexts"] == 1
    assert fed.hospitals[0].policy.used["decrypt.share result"] == [1, 1, 1]  # the refused one was given back
    d = fed.hospitals[1].encrypt([2.0])
    assert np.allclose(fed.decrypt(d, label="result"), [2.0], atol=1e-3)  # so a second decryption is answered
    fed.close()
