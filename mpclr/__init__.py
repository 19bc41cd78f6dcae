"""mpclr: multiparty privacy-preserving logistic regression on threshold CKKS (Pyfhel / SEAL).

import mpclr
est = mpclr.EncryptedLogisticRegressionCV(cv=5, hospitals=3).fit(X, y)   # scikit-learn's shape
est.cv_results_, est.coefficient_table(), est.predict_proba(X)

fed = mpclr.Federation(hospitals=3, preset="fast", manifest="exploration")   # interactive: no budget
a = fed.hospitals[0].encrypt(x)
c = fed.server.multiply(a, fed.hospitals[1].encrypt(y))
fed.decrypt(c, by=[0, 1, 2])
"""

from .errors import (
    DataError,
    FormatError,
    InsecureParametersWarning,
    MessageError,
    MpclrError,
    ParameterError,
    ProtocolError,
)
from .federation import Federation
from .params import PRESETS, Params, get_preset
from .roles import Ciphertext
from .stats import PooledGLM, glm
from .version import __version__ as __version__

__all__ = [
    "EncryptedLogisticRegressionCV",
    "EncryptedLogisticRegression",
    "NesterovLR",
    "Federation",
    "Ciphertext",
    "glm",
    "PooledGLM",
    "Params",
    "PRESETS",
    "get_preset",
    "MpclrError",
    "ParameterError",
    "FormatError",
    "ProtocolError",
    "MessageError",
    "DataError",
    "InsecureParametersWarning",
]

# scikit-learn takes seconds to import and a hospital's node never needs it: the estimators load on first use
_LAZY = {
    "EncryptedLogisticRegressionCV": "estimator",
    "EncryptedLogisticRegression": "estimator",
    "NesterovLR": "plain.nesterov",
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
