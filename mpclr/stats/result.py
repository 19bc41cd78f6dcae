"""A pooled GLM's result, shown as statsmodels shows a GLM: coefficients, standard errors, z, p, 95 %
confidence intervals (odds ratios for the binomial family, rate ratios for Poisson), deviance, AIC,
iterations and the converged flag, with the data's column names."""

from __future__ import annotations

import math

import numpy as np

__all__ = ["GLMResult", "Z975"]

Z975 = 1.959963984540054  # the normal quantile statsmodels' 95 % intervals use


class GLMResult:
    """params, bse, tvalues (z), pvalues, conf_int(), summary() (a DataFrame), deviance, aic, ... as in
    statsmodels' GLMResults; and what the fit revealed to the researcher (`revealed`)."""

    def __init__(self, fit: dict):
        self._fit = fit
        self.model = fit["model"]
        self.family = self.model.family
        self.names = list(self.model.names)
        self.params = np.asarray(fit["params"], dtype=np.float64)
        self.cov_params = np.asarray(fit["cov"], dtype=np.float64)
        self.bse = np.sqrt(np.diag(self.cov_params))
        self.tvalues = self.params / self.bse
        from scipy.stats import norm

        self.pvalues = 2.0 * norm.sf(np.abs(self.tvalues))
        for key in ("scale", "deviance", "pearson_chi2", "null_deviance", "llf", "llnull", "nobs", "df_resid",
                    "iterations", "converged", "ridge", "history", "rounds", "hospitals", "revealed", "seconds"):
            setattr(self, key, fit[key])
        self.df_model = self.model.p - int(self.model.intercept)
        k = self.model.p
        self.aic = -2.0 * self.llf + 2.0 * k
        self.bic = -2.0 * self.llf + k * math.log(self.nobs)
        self.pseudo_rsquared = 1.0 - math.exp((self.llnull - self.llf) * 2.0 / self.nobs)

    def __repr__(self) -> str:
        return (f"GLMResult({self.family}, outcome {self.model.outcome!r}, {self.model.p} parameters, "
                f"{self.nobs} rows at {len(self.hospitals)} hospitals, deviance {self.deviance:.6g})")

    def conf_int(self, alpha: float = 0.05) -> np.ndarray:
        from scipy.stats import norm

        z = Z975 if alpha == 0.05 else float(norm.ppf(1 - alpha / 2))
        return np.column_stack([self.params - z * self.bse, self.params + z * self.bse])

    def summary(self):
        """The coefficient table as a pandas DataFrame indexed by column name (statsmodels' column names;
        odds ratios with their interval for the binomial family, rate ratios for Poisson)."""
        import pandas as pd

        ci = self.conf_int()
        frame = pd.DataFrame(
            {"coef": self.params, "std err": self.bse, "z": self.tvalues, "P>|z|": self.pvalues,
             "[0.025": ci[:, 0], "0.975]": ci[:, 1]},
            index=pd.Index(self.names, name=self.model.outcome),
        )
        ratio = {"binomial": "odds ratio", "poisson": "rate ratio"}.get(self.family)
        if ratio:
            frame[ratio] = np.exp(self.params)
            frame[f"{ratio} [0.025"] = np.exp(ci[:, 0])
            frame[f"{ratio} 0.975]"] = np.exp(ci[:, 1])
        return frame

    def info(self) -> dict:
        """The summary's header, as statsmodels prints it above the coefficients."""
        out = {
            "Dep. Variable": self.model.outcome,
            "Model": "GLM (pooled, encrypted per-hospital sums)",
            "Model Family": self.family.capitalize(),
            "Link Function": {"binomial": "Logit", "poisson": "Log", "gaussian": "Identity"}[self.family],
            "Method": "IRLS",
            "No. Observations": self.nobs,
            "Hospitals": len(self.hospitals),
            "Df Residuals": self.df_resid,
            "Df Model": self.df_model,
            "Scale": self.scale,
            "Log-Likelihood": self.llf,
            "Deviance": self.deviance,
            "Pearson chi2": self.pearson_chi2,
            "Null deviance": self.null_deviance,
            "AIC": self.aic,
            "Pseudo R-squ. (CS)": self.pseudo_rsquared,
            "No. Iterations": self.iterations,
            "Converged": self.converged,
            "Covariance Type": "nonrobust",
        }
        if self.ridge:
            out["Penalty"] = f"ridge: lambda / 2 * sum of squared non-intercept coefficients, lambda = {self.ridge:g}"
        return out

    def summary_text(self) -> str:
        """A plain-text summary: the header, then the coefficient table."""
        head = [f"{k:<22} {v:.6g}" if isinstance(v, float) else f"{k:<22} {v}" for k, v in self.info().items()]
        table = self.summary().to_string(float_format=lambda v: f"{v:.4g}")
        note = []
        if self.ridge:
            note.append(f"Coefficients are penalized (ridge lambda = {self.ridge:g}): not the maximum-likelihood "
                        "estimate; standard errors from the penalized information.")
        return "\n".join(["Pooled GLM Regression Results", *head, "", table, *note])

    def _repr_html_(self) -> str:
        return self.summary()._repr_html_()

    def to_dict(self) -> dict:
        """JSON-able: the header, every coefficient's row, the history of the iterations, what was revealed."""
        rows = self.summary().reset_index().to_dict(orient="records")
        return {
            "summary": {k: (bool(v) if isinstance(v, np.bool_) else v) for k, v in self.info().items()},
            "coefficients": rows,
            "cov_params": self.cov_params.tolist(),
            "history": self.history,
            "rounds": self.rounds,
            "hospitals": self.hospitals,
            "revealed": self.revealed,
            "seconds": self.seconds,
        }
