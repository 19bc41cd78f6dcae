"""mpclr: multiparty privacy-preserving logistic regression on threshold CKKS (Pyfhel / SEAL).

import mpclr
fed = mpclr.Federation(parties=3, preset="fast", manifest="exploration")   # interactive: no budget
a = fed.parties[0].encrypt(x)
c = fed.server.multiply(a, fed.parties[1].encrypt(y))
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
