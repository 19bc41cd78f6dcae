"""Statistics a medical paper reports, on encrypted per-hospital sums: a pooled GLM with standard errors
(`glm`, `PooledGLM`) and a secure "Table 1" (`table_one`). Importing this package teaches every hospital
the steps these protocols ask of it (mpclr.stats.hospital)."""

from . import hospital
from .estimator import PooledGLM, deal, glm
from .glm import GLMFitError
from .hospital import Settings, configure, give_data, settings_of
from .result import GLMResult

__all__ = ["glm", "PooledGLM", "GLMResult", "GLMFitError", "Settings", "configure", "give_data", "settings_of",
           "deal", "hospital"]
