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
from mpclr.stats.budget import glm_budget
from mpclr.stats.columns import Columns, load_columns
from mpclr.stats.hospital import Settings

REL = 1e-6
FAMILIES = {"binomial": sm.families.Binomial, "gaussian": sm.families.Gaussian, "poisson": sm.families.Poisson}


@pytest.fixture(scope="module")
def fed():
    f = mpclr.Federation(parties=3, preset="train")
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


def test_only_pooled_sums_are_revealed_with_labels_and_counts_within_the_budget(fed):
    """Each round decrypts one ciphertext of the packed length; hospitals see every decryption request with
    its label and value count, and the requests stay within glm_budget's counts."""
    seen = []
    for party in fed.parties:
        for step in ("glm.step", "decrypt.share"):
            handler = party._handlers[step]

            def record(fields, sender, handler=handler, step=step, who=party.name):
                seen.append((who, step, fields))
                return handler(fields, sender)

            party._handlers[step] = record
    try:
        r = glm("lbw", federation=fed, max_iter=10)
    finally:
        for party in fed.parties:
            for step in ("glm.step", "decrypt.share"):
                party._handlers[step] = party._handlers[step].__defaults__[0]
    length = 10 * 11 // 2 + 10 + 7
    assert [e["values"] for e in r.revealed] == [length] * len(r.revealed)
    assert all(e["label"].startswith("glm: ") for e in r.revealed) and len(r.revealed) == r.iterations + 1
    budget = {b["step"]: b for b in glm_budget(10, 10)}
    for party in fed.parties:
        mine = [(step, f) for who, step, f in seen if who == party.name]
        steps = [f for step, f in mine if step == "glm.step"]
        decs = [f for step, f in mine if step == "decrypt.share"]
        assert all(f["label"].startswith(budget["glm.step"]["label"]) for f in steps)
        assert all(f["label"].startswith(budget["decrypt.share"]["label"]) for f in decs)
        assert len(steps) == len(decs) == len(r.revealed) <= budget["glm.step"]["rounds"]
        values = sum(sum(f["values"]) if isinstance(f["values"], list) else f["values"] for f in decs)
        assert values == len(r.revealed) * length <= budget["decrypt.share"]["values"]
        assert all(len(f["c1"]) <= budget["decrypt.share"]["per_round"] for f in decs)


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
    configure(fed.parties[1], glm_max_fraction=0.1)  # its own setting: 63 rows allow 6 parameters
    try:
        with pytest.raises(ProtocolError, match=r"hospital-2 refuses a model of 10 parameters: its glm_max_fraction "
                                                r"0.1 allows at most 6 with its 63 rows"):
            glm("lbw", federation=fed)
        r = glm("lbw", federation=fed, columns=["x1", "x2", "x3", "x4"])  # 5 parameters: answered
        assert r.converged
    finally:
        configure(fed.parties[1], Settings())
    small = synthetic("binomial", n=60).iloc[:, :]
    with pytest.raises(ProtocolError, match="glm_max_fraction 0.33 allows at most 6 with its 20 rows"):
        glm(small.assign(a=small.age ** 2, b=small.dose ** 0.5), label="outcome", federation=fed)


def test_two_hospitals_warn_and_threshold_decryption(tmp_path):
    with mpclr.Federation(parties=3, threshold=2, preset="train") as f3:
        r = glm("lbw", federation=f3, by=[0, 2])
        assert {tuple(e["by"]) for e in r.revealed} == {("hospital-1", "hospital-3")}
    with mpclr.Federation(parties=2, preset="train") as f2, pytest.warns(PrivacyWarning, match="two hospitals"):
        glm("lbw", federation=f2, columns=["x1", "x2"])


def test_command_line(tmp_path, capsys):
    import json

    from mpclr.cli import main

    out = tmp_path / "glm.json"
    assert main(["glm", "uis", "--family", "poisson", "--label", "x5", "--parties", "3", "--threshold", "2",
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
