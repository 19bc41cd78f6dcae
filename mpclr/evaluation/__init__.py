"""Secure evaluation of the encrypted fold models: the public layout, sign polynomials (comparison), the
hospital's step (hospital), and the evaluation itself: orchestration (secure), comparison passes (passes), worker
processes (pool), packing (packer), where the next thresholds go (refinement), metrics from counts (counts),
the result (results), design constants (constants)."""
