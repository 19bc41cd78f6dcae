"""Pooled GLMs on encrypted per-hospital sums against statsmodels' GLM on the pooled rows (same data, same
run), the hospitals' own refusals, and the fit's stopping messages.

statsmodels is fitted to convergence (tol 1e-12): with its default tol 1e-8 its own standard errors on pcs
are 1.4e-6 away from its converged ones (it takes the covariance at the weights of its next-to-last
iterate), ours are within 1e-9 of the converged ones."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm

import mpclr
from mpclr.errors import PrivacyWarning, ProtocolError
from mpclr.stats import GLMFitError, PooledGLM, configure, glm
from mpclr.stats.columns import Columns, load_columns
from mpclr.stats.hospital import Settings
from mpclr.stats.manifest import glm_manifest

REL = 1e-6
FAMILIES = {"binomial": sm.families.Binomial, "gaussian": sm.families.Gaussian, "poisson": sm.families.Poisson}


@pytest.fixture(scope="module")
def fed():
    """One federation for many fits (protocol tests): its hospitals answer without a budget ("exploration");
    the manifests a fit is held to are tested below."""
    f = mpclr.Federation(hospitals=3, preset="train", manifest="exploration")
    yield f
    f.close()


def statsmodels_fit(cols, family, columns=None):
    names = columns or cols.predictors()
    X = sm.add_constant(np.column_stack([cols.column(c) for c in names]), has_constant="add")
    return sm.GLM(cols.column(cols.outcome), X, family=FAMILIES[family]()).fit(tol=1e-12, maxiter=100)


def synthetic(family: str, n: int = 600, seed: int = 5) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    X = rng.normal([0.0, 40.0, 1e3, -2.0], [1.0, 12.0, 300.0, 0.5], size=(n, 4))
    Z = (X - X.mean(axis=0)) / X.std(axis=0)
    eta = Z @ np.array([0.6, -0.4, 0.3, 0.2])
    if family == "gaussian":
        y = 5.0 + 3.0 * eta + rng.normal(0, 2.0, n)
    elif family == "poisson":
        y = rng.poisson(np.exp(1.0 + 0.5 * eta)).astype(float)
    else:
        y = (rng.random(n) < 1 / (1 + np.exp(-eta))).astype(float)
    return pd.DataFrame({"age": X[:, 1], "dose": X[:, 2], "score": X[:, 0], "ph": X[:, 3], "outcome": y})


CASES = [("lbw", "binomial", "last"), ("edin", "binomial", "last"), ("pcs", "binomial", "last"),
         ("uis", "binomial", "last"), ("lbw", "gaussian", "x2"), ("uis", "poisson", "x5"), ("pcs", "gaussian", "x6")]


@pytest.mark.parametrize("name,family,label", CASES, ids=[f"{c[0]}-{c[1]}" for c in CASES])
def test_shipped_sets_match_statsmodels(fed, name, family, label):
    cols = load_columns(name, label, family=family)
    r = glm(name, family, label=label, federation=fed)
    ref = statsmodels_fit(cols, family)
    np.testing.assert_allclose(r.params, ref.params, rtol=REL)
    np.testing.assert_allclose(r.bse, ref.bse, rtol=REL)
    np.testing.assert_allclose([r.deviance, r.llf, r.aic, r.null_deviance, r.pearson_chi2, r.scale],
                               [ref.deviance, ref.llf, ref.aic, ref.null_deviance, ref.pearson_chi2, ref.scale],
                               rtol=1e-9)
    assert r.converged and r.nobs == len(cols.values) and r.df_resid == ref.df_resid
    assert r.names == ["Intercept", *[c for c in cols.names if c != cols.outcome]]


@pytest.mark.parametrize("family", ["binomial", "gaussian", "poisson"])
def test_synthetic_sets_match_statsmodels_with_names_from_the_frame(fed, family):
    df = synthetic(family)
    r = glm(df, family, label="outcome", federation=fed)
    ref = statsmodels_fit(load_columns(df, "outcome", family=family), family)
    np.testing.assert_allclose(r.params, ref.params, rtol=REL)
    np.testing.assert_allclose(r.bse, ref.bse, rtol=REL)
    table = r.summary()
    assert list(table.index) == ["Intercept", "age", "dose", "score", "ph"] and table.index.name == "outcome"
    np.testing.assert_allclose(table["z"], ref.tvalues, rtol=REL)
    np.testing.assert_allclose(table["P>|z|"], ref.pvalues, rtol=1e-5, atol=1e-300)
    np.testing.assert_allclose(table[["[0.025", "0.975]"]], ref.conf_int(), rtol=REL)
    ratio = {"binomial": "odds ratio", "poisson": "rate ratio"}.get(family)
    if ratio:
        np.testing.assert_allclose(table[ratio], np.exp(ref.params), rtol=REL)
        np.testing.assert_allclose(table[f"{ratio} [0.025"], np.exp(ref.conf_int()[:, 0]), rtol=REL)
    else:
        assert not any("ratio" in c for c in table.columns)
    info = r.info()
    assert info["No. Observations"] == 600 and info["Converged"] is True and info["No. Iterations"] == r.iterations
    assert info["AIC"] == pytest.approx(ref.aic, rel=1e-9)


def test_estimator_api(fed):
    df = synthetic("binomial", n=300, seed=9)
    est = PooledGLM("binomial", federation=fed).fit(df.drop(columns="outcome"), df["outcome"])
    ref = statsmodels_fit(load_columns(df, "outcome"), "binomial")
    np.testing.assert_allclose(est.params_, ref.params, rtol=REL)
    np.testing.assert_allclose(est.bse_, ref.bse, rtol=REL)
    assert list(est.feature_names_in_) == ["age", "dose", "score", "ph"]
    assert est.intercept_ == pytest.approx(ref.params[0], rel=REL) and est.coef_.shape == (4,)
    proba = est.predict(df.drop(columns="outcome").to_numpy())
    np.testing.assert_allclose(proba, ref.predict(sm.add_constant(df.drop(columns="outcome").to_numpy())), rtol=1e-6)
    assert list(est.summary().index)[0] == "Intercept"


def test_only_pooled_sums_are_revealed_with_labels_and_counts(fed):
    """Each round decrypts one ciphertext of the packed length, labelled by the protocol."""
    r = glm("lbw", federation=fed, max_iter=10)
    length = 10 * 11 // 2 + 10 + 7
    assert [e["values"] for e in r.revealed] == [length] * len(r.revealed)
    assert all(e["label"].startswith("glm: ") for e in r.revealed) and len(r.revealed) == r.iterations + 1


def _ledgers(monkeypatch) -> list:
    """(manifest, each hospital's ledger) of every federation closed from now on: what a fit that makes its
    own federation agreed to and used."""
    seen, close = [], mpclr.Federation.close

    def spy(self):
        seen.append((self.manifest, [dict(p.policy.used) for p in self.hospitals]))
        return close(self)

    monkeypatch.setattr(mpclr.Federation, "close", spy)
    return seen


def test_a_fit_makes_its_federation_with_its_manifest_and_stays_within_it(monkeypatch):
    seen = _ledgers(monkeypatch)
    r = glm("lbw", max_iter=10, threshold=2, preset="fast")  # the fast preset: the budgets are the same
    (manifest, ledgers), = seen
    assert manifest == glm_manifest(3, 10, threshold=2, max_iter=10)  # budgets and retries (the plan aside)
    assert manifest.retries == 2 and manifest.budget_for("shamir.deal", "") is not None
    assert manifest.plan["columns"] == r.names and manifest.plan["outcome"] == "y"
    rounds = len(r.revealed)
    length = 10 * 11 // 2 + 10 + 7
    step, dec = manifest.budget_for("glm.step", "glm: x"), manifest.budget_for("decrypt.share", "glm: x")
    assert rounds <= step.rounds == dec.rounds == 12
    for used in ledgers:
        assert used["glm.step glm"] == [rounds, 0, 0]
        assert used["decrypt.share glm"] == [rounds, rounds, rounds * length]
        assert used["decrypt.share glm"][2] <= dec.values
        ceremony = {k: v for k, v in used.items() if not k.endswith(" glm")}
        assert ceremony == {b.key: [1, 0, 0] for b in manifest.budgets if b.label == ""}  # once each, nothing else


def test_an_existing_federation_s_manifest_governs():
    """A federation made for something else (here the key ceremony only, the default) is refused the fit
    by its hospitals, naming the step and the label; one whose manifest is one round short, at that round."""
    with mpclr.Federation(hospitals=3, preset="fast") as keys_only:
        with pytest.raises(ProtocolError, match=r"hospital-1 refuses glm.step 'glm: design \(beta = 0\)' from "
                                                r"server: not in the study manifest 'key ceremony only'"):
            glm("lbw", federation=keys_only, columns=["x1", "x2"])
    short = glm_manifest(3, 3, max_iter=10).with_budget("glm.step", "glm", rounds=2)
    with mpclr.Federation(hospitals=3, preset="fast", manifest=short) as fed:
        with pytest.raises(ProtocolError, match=r"refuses glm.step 'glm: iteration 2' from server: beyond the study "
                                                r"manifest 'pooled GLM' .*budget 'glm.step glm' allows 2 rounds "
                                                r"\(2 answered\)"):
            glm("lbw", federation=fed, columns=["x1", "x2"], max_iter=10)


def test_collinear_design_names_its_columns(fed):
    rng = np.random.default_rng(1)
    race = rng.integers(0, 3, 300)
    df = pd.DataFrame({"age": rng.normal(50, 10, 300), "white": (race == 0) * 1.0, "black": (race == 1) * 1.0,
                       "other": (race == 2) * 1.0, "y": (rng.random(300) < 0.4) * 1})
    with pytest.raises(GLMFitError, match="rank-deficient") as err:
        glm(df, label="y", federation=fed)
    assert err.value.kind == "collinearity"
    msg = str(err.value)  # e.g. "Intercept = black + other + white" (which one is written out depends on pivoting)
    assert all(n in msg for n in ("Intercept", "white", "black", "other", " = ")) and "age" not in msg
    assert len(fed.researcher.revealed) and fed.researcher.revealed[-1]["label"].startswith("glm: design")


def test_a_zero_column_is_named(fed):
    """(A file or frame with a constant column is refused when it is read; dealt rows can still have one.)"""
    cols = load_columns(synthetic("binomial", n=150), "outcome")
    values = np.column_stack([cols.values, np.zeros(150)])
    with pytest.raises(GLMFitError, match="'empty' is 0 in every row"):
        glm(Columns((*cols.names, "empty"), values, "outcome"), federation=fed)


def test_breast_cancer_is_separated_and_ridge_names_its_penalty(fed):
    with pytest.raises(GLMFitError, match="separated|separation") as err:
        glm("breast_cancer", federation=fed, max_iter=15)
    assert err.value.kind == "separation" and "ridge" in str(err.value) and "worst" in str(err.value)
    r = glm("breast_cancer", federation=fed, ridge=1.0)
    # the penalized likelihood's maximum, found in the clear on the pooled rows
    ds = mpclr.data.load("breast_cancer")
    X = np.column_stack([np.ones(len(ds.y)), ds.X])
    b = np.zeros(X.shape[1])
    pen = np.r_[0.0, np.ones(X.shape[1] - 1)]
    for _ in range(100):
        mu = 1 / (1 + np.exp(-X @ b))
        b = b + np.linalg.solve((X * (mu * (1 - mu))[:, None]).T @ X + np.diag(pen), X.T @ (ds.y - mu) - pen * b)
    np.testing.assert_allclose(r.params, b, rtol=1e-6, atol=1e-9)
    assert "ridge" in r.info()["Penalty"] and "penalized" in r.summary_text()


def test_quasi_separation_names_the_diverging_column(fed):
    rng = np.random.default_rng(3)
    x1, x2 = rng.normal(0, 1, 240), (rng.random(240) < 0.15) * 1.0
    y = np.where(x2 == 1, 1, (rng.random(240) < 1 / (1 + np.exp(-0.5 * x1))) * 1)
    with pytest.raises(GLMFitError, match="quasi-separation: .* coefficients of x2 ") as err:
        glm(pd.DataFrame({"x1": x1, "x2": x2, "y": y}), label="y", federation=fed)
    assert err.value.kind == "separation"


def test_a_hospital_refuses_a_model_too_large_for_its_rows(fed):
    configure(fed.hospitals[1], glm_max_fraction=0.1)  # its own setting: 63 rows allow 6 parameters
    try:
        with pytest.raises(ProtocolError, match=r"hospital-2 refuses a model of 10 parameters: its glm_max_fraction "
                                                r"0.1 allows at most 6 with its 63 rows"):
            glm("lbw", federation=fed)
        r = glm("lbw", federation=fed, columns=["x1", "x2", "x3", "x4"])  # 5 parameters: answered
        assert r.converged
    finally:
        configure(fed.hospitals[1], Settings())
    small = synthetic("binomial", n=60).iloc[:, :]
    with pytest.raises(ProtocolError, match="glm_max_fraction 0.33 allows at most 6 with its 20 rows"):
        glm(small.assign(a=small.age ** 2, b=small.dose ** 0.5), label="outcome", federation=fed)


def test_two_hospitals_warn_and_threshold_decryption(tmp_path):
    with mpclr.Federation(hospitals=3, threshold=2, preset="train", manifest="exploration") as f3:
        r = glm("lbw", federation=f3, by=[0, 2])
        assert {tuple(e["by"]) for e in r.revealed} == {("hospital-1", "hospital-3")}
    with mpclr.Federation(hospitals=2, preset="train", manifest="exploration") as f2:
        with pytest.warns(PrivacyWarning, match="two hospitals"):
            glm("lbw", federation=f2, columns=["x1", "x2"])


def test_command_line(tmp_path, capsys):
    import json

    from mpclr.cli import main

    out = tmp_path / "glm.json"
    assert main(["glm", "uis", "--family", "poisson", "--label", "x5", "--hospitals", "3", "--threshold", "2",
                 "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "Pooled GLM Regression Results" in text and "rate ratio" in text
    rec = json.loads(out.read_text())
    ref = statsmodels_fit(load_columns("uis", "x5", family="poisson"), "poisson")
    np.testing.assert_allclose([c["coef"] for c in rec["coefficients"]], ref.params, rtol=REL)
    assert rec["summary"]["Converged"] is True and rec["summary"]["Model Family"] == "Poisson"
    assert main(["glm", "uis", "--family", "poisson", "--label", "nope"]) == 2
    assert "has no column 'nope'" in capsys.readouterr().err


def test_a_file_whose_outcome_is_not_a_number_is_refused_naming_the_cell(tmp_path):
    path = tmp_path / "cohort.csv"
    path.write_text("age,dose,bmi\n50,1.5,22.1\n61,2.0,high\n")
    with pytest.raises(mpclr.errors.DataError, match=r"line 3, column 3 \('bmi'\) \(outcome\): 'high' is not a "):
        load_columns(path, "bmi", family="gaussian")
    path.write_text("age,dose,bmi\n50,1.5,22.1\n61,2.0,NA\n")
    with pytest.raises(mpclr.errors.DataError, match=r"line 3, column 3 \('bmi'\) \(label\): the label is missing"):
        load_columns(path, "bmi", family="gaussian")


def test_07_without_the_glm_in_the_study_manifest_says_to_rerun_01():
    """Notebook 07 on a federation whose hospitals agreed no pooled GLM (01 run with regression_table=False):
    stopped before any request, saying what to rerun."""
    from mpclr.stats.report import agreed, study_glm

    with mpclr.Federation(hospitals=2, preset="fast") as fed:  # the key ceremony only
        assert not agreed(fed, "glm") and not agreed(fed, "table1")
        with pytest.raises(mpclr.errors.DataError, match=r"no pooled GLM: rerun notebooks/01_key_ceremony.ipynb with "
                                                         r"regression_table=True"):
            study_glm(fed, None)
        assert sum(p.handler_calls.get("glm.step", 0) for p in fed.hospitals) == 0
