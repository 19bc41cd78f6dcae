"""Encrypted training: the public layout, what a hospital computes and answers (party, hospital), the
per-block arithmetic and its worker processes (blocks, workers), the trainer (encrypted) and the encrypted
cross-validation (cv)."""
