"""Statistics a medical paper reports, on encrypted per-hospital sums: a pooled GLM with standard errors
(`glm`, `PooledGLM`) and a secure "Table 1" (`table_one`), with the study manifests their hospitals agree to
(`glm_manifest`, `table_manifest`). Importing this package teaches every hospital the steps these protocols
ask of it (mpclr.stats.hospital)."""

from . import hospital
from .estimator import PooledGLM, deal, glm
from .glm import GLMFitError, fit_pooled
from .hospital import Settings, configure, give_data, settings_of
from .manifest import glm_manifest, table_manifest
from .result import GLMResult
from .table1 import TableOne, table_one

__all__ = ["glm", "PooledGLM", "GLMResult", "GLMFitError", "Settings", "configure", "give_data", "settings_of",
           "deal", "fit_pooled", "table_one", "TableOne", "hospital", "glm_manifest", "table_manifest"]
