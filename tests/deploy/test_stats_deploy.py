"""The pooled GLM and Table 1 as deployment studies, over the stand-in Flower grid of test_transport: the
hospitals answer from their own files and their own disclosure settings (hospital configuration keys)."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("flwr")
sm = pytest.importorskip("statsmodels.api")

from mpclr.deploy.hospital import HospitalConfig, answer  # noqa: E402
from mpclr.deploy.server_app import DeploymentConfig, run_deployed_study  # noqa: E402
from mpclr.errors import ProtocolError  # noqa: E402
from mpclr.params import get_preset  # noqa: E402
from mpclr.roles.policy import Manifest  # noqa: E402
from mpclr.stats.deploy import pooled_glm, table_one  # noqa: E402
from mpclr.stats.manifest import glm_manifest, table_manifest  # noqa: E402

from .test_transport import FakeGrid, keystore_passphrase, make_data, write_hospitals  # noqa: E402, F401


class SettingsGrid(FakeGrid):
    """FakeGrid whose hospitals also get their disclosure settings from their node configuration."""

    def pull_messages(self, ids):
        out = []
        for mid in list(ids):
            m = self.inbox.pop(mid, None)
            if m is None:
                continue
            hospital = self.hospitals[m.metadata.dst_node_id]
            config = {"hospital-name": hospital.name, "keystore": hospital.keystore, "data": hospital.data,
                      "encrypt": hospital.encrypt, "glm-max-fraction": hospital.glm_max_fraction,
                      "min-cell": hospital.min_cell}
            out.append(answer(m, SimpleNamespace(node_config=config)))
        return out


def config(tmp_path, **options):
    return DeploymentConfig(output=str(tmp_path / "out"), hospital_names=["hospital-1", "hospital-2", "hospital-3"],
                            preset="train", join_timeout=5, round_timeout=60, poll=0.0, max_poll=0.0, options=options)


def answered(tmp_path, manifest: Manifest) -> list[dict[str, list[int]]]:
    """Per hospital, [rounds, ciphertexts] answered per budget of the manifest, from its audit log (where every
    request is, answered or refused: none may be refused here)."""
    out = []
    for i in (1, 2, 3):
        records = [json.loads(line) for line in (tmp_path / f"keystore-{i}" / "audit.jsonl").open()]
        assert all(r["decision"] == "answered" for r in records)
        used: dict[str, list[int]] = {}
        for r in records:
            if r["step"] not in ("hello", "folds", "join"):  # bootstrap messages, before the session
                b = manifest.budget_for(r["step"], r["label"])
                got = used.setdefault(b.key, [0, 0])
                got[0], got[1] = got[0] + 1, got[1] + r["ciphertexts"]
        out.append(used)
    return out


@pytest.fixture(scope="module")
def data():
    X, y = make_data(n=240, d=3, seed=11)
    X[:, 2] = np.round(np.abs(X[:, 2]))  # a small count, for a categorical row
    return X, y


def test_pooled_glm_over_the_grid_matches_statsmodels(tmp_path, data):
    X, y = data
    res = run_deployed_study(SettingsGrid(write_hospitals(tmp_path, X, y)), config(tmp_path), study=pooled_glm)
    assert res["status"] == "ok", res.get("error")
    study = res["study"]
    ref = sm.GLM(y, sm.add_constant(X), family=sm.families.Binomial()).fit(tol=1e-12)
    rows = study["coefficients"]
    assert [r["y"] for r in rows] == ["Intercept", "x0", "x1", "x2"]  # the hospitals' header names
    np.testing.assert_allclose([r["coef"] for r in rows], ref.params, rtol=1e-6)
    np.testing.assert_allclose([r["std err"] for r in rows], ref.bse, rtol=1e-6)
    assert study["summary"]["Hospitals"] == 3 and all(e["label"].startswith("glm: ") for e in study["revealed"])
    # the hospitals agreed to the fit's manifest (read the columns once, at most max-iter + 2 rounds) and no more
    manifest = Manifest.from_json(res["manifest"])
    assert manifest == glm_manifest(3, 4, max_iter=25, settings=1)
    rounds = len(study["revealed"])
    for used in answered(tmp_path, manifest):
        assert used.pop("glm.step glm") == [rounds, 0] and used.pop("decrypt.share glm") == [rounds, rounds]
        assert rounds <= manifest.budget_for("glm.step", "glm").rounds
        assert used == {b.key: [b.rounds, 0] for b in manifest.budgets if b.key not in ("glm.step glm",
                                                                                         "decrypt.share glm")}


def test_a_hospital_refuses_by_its_own_settings(tmp_path, data):
    X, y = data
    hospitals = write_hospitals(tmp_path, X, y)
    # 80 rows: at most 2 parameters
    hospitals[0] = HospitalConfig(**{**hospitals[0].__dict__, "glm_max_fraction": 0.03})
    with pytest.raises(ProtocolError, match="hospital-1 refuses a model of 4 parameters: its glm_max_fraction 0.03 "
                                            "allows at most 2 with its 80 rows"):
        run_deployed_study(SettingsGrid(hospitals), config(tmp_path), study=pooled_glm)
    failed = json.loads((tmp_path / "out" / "failed.json").read_text())
    assert failed["phase"] == "study" and "hospital-1 refuses a model" in failed["error"]
    ok = run_deployed_study(SettingsGrid(hospitals), config(tmp_path, columns="x0"), study=pooled_glm)
    assert ok["status"] == "ok" and [r["y"] for r in ok["study"]["coefficients"]] == ["Intercept", "x0"]


def test_table_one_over_the_grid_matches_pandas(tmp_path, data):
    X, y = data
    hospitals = write_hospitals(tmp_path, X, y)
    hospitals[1] = HospitalConfig(**{**hospitals[1].__dict__, "min_cell": 8})  # the largest min_cell is the table's
    levels = sorted(set(X[:, 2].tolist()))
    res = run_deployed_study(SettingsGrid(hospitals), config(tmp_path, continuous="x0,x1",
                                                             categorical=json.dumps({"x2": levels})), study=table_one)
    assert res["status"] == "ok", res.get("error")
    t = res["study"]
    df = pd.DataFrame(X, columns=["x0", "x1", "x2"]).assign(y=y)
    assert t["min_cell"] == 8 and t["columns"] == ["overall", "y=0", "y=1"]
    rows = {(r["variable"], r["what"]): r for r in t["rows"]}
    for col, part in (("overall", df), ("y=0", df[df.y == 0]), ("y=1", df[df.y == 1])):
        assert rows[("x0", "mean (SD)")][col] == f"{part.x0.mean():.2f} ({part.x0.std():.2f})"
        counts = part.x2.value_counts()
        small = [lv for lv in levels if 1 <= counts.get(lv, 0) < 8]
        for lv in small:
            assert rows[("x2", f"{int(lv)}")][col] == "<8"
    assert "x2" in t["suppressed_variables"]
    # the hospitals agreed to this table's manifest, at the largest min_cell they reported at hello, and the
    # table used it exactly, budget by budget
    manifest = Manifest.from_json(res["manifest"])
    assert manifest == table_manifest(get_preset("train"), 3, 8, levels=len(levels), continuous=2, settings=1)
    for used in answered(tmp_path, manifest):
        assert used == {b.key: [b.rounds, b.ciphertexts] for b in manifest.budgets}
