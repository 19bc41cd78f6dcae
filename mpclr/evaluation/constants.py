"""The secure evaluation's public design constants (resolutions, grid sizes, headroom), with why."""

from __future__ import annotations

FINE_BITS = 18  # the finest transition tried: 2^-18; the refreshes' smudging leaves 2^-11 at train (see above)
# 2^-8: 0.125 in score units for R = 16, 5 refresh cycles instead of 6 for 2^-10. At paper scale the AUC error
# is the grid's (4 + 4 thresholds: 0.0049 with 2^-8, 0.0048 with 2^-10, measured on the clear scores with the
# composites in float64), and counts move by at most 8 rows of about 4,900.
COARSE_BITS = 8
# Folds larger than a lane (one copy per ciphertext): each threshold costs a full comparison pass over the
# scores, so a small public grid is refined where positives and negatives overlap. On the paper-scale study
# (49,152 x 10), max |AUC error| over folds with exact counts, trapezoid: 12 grid points 0.0035, 8 grid points
# 0.0074, 4 + 4 refined 0.0047, 4 + 4 + 4 refined 0.0022; encrypted, 4 + 4 + 4: 0.0024 in 43 s. The
# refinement splits the heaviest mixed cells evenly (in predicted probability), so one round of 8 places the
# same 8 thresholds as two rounds of 4 with one pass fewer. With the interpolated AUC (mpclr.evaluation.counts)
# fewer thresholds do (max |error| over four synthetic paper-scale sets, clear scores through the float64
# composites, benchmarks/auc_policy.py; trapezoid in brackets): 4 + 8: 0.0009 (0.0026); 4 + 6: 0.0010
# (0.0033); 4 + 4: 0.0015 (0.0051); 3 + 5: 0.0023. So 4 + 6: 11 thresholds per fold, 2 fewer comparisons per
# block than 4 + 2 x 4 (15 % of the comparisons' time and bytes) and 2 counts pairs fewer revealed.
DEFAULT_GRID = 4
DEFAULT_REFINE = 6
DEFAULT_REFINE_ROUNDS = 1
# Folds that fit a lane several times get at least this many thresholds per fold and pass (one more
# comparison ciphertext when the copies are fewer): the ROC of a small fold needs every positive and
# negative score told apart. With cells split in predicted probability, two refinement rounds of 16 reach
# the comparison's resolution on breast cancer, lbw, pcs, uis and edin at 5 and 10 folds (a third and a
# fourth round found nothing left to split: cells narrower than two transitions; the deployed breast cancer
# study's rounds 2-4 had no threshold to place), so small studies take 2 rounds, not 4: 12 refresh rounds
# and 26 MB per hospital fewer on breast cancer.
SMALL_PER_PASS = 16
SMALL_REFINE_ROUNDS = 2
_PAD = 0.5  # threshold / D at slots without a row: above every score, so they count 0
# Hospitals encrypt their evaluation rows 2^10 larger, and the scores come down by 2^-10 in a plaintext
# product (one level): that divides the noise of the scores' product (their encryption noise times the
# weights, summed over the features, up to 2^13) down to a rescale's rounding (2^6), so the first refresh
# after them has little to hide (README, "Smudging and masks").
SCORE_HEADROOM_BITS = 10
# scores are multiplied by 2^7 (by additions) before a testing decryption: their noise (a rescale's rounding,
# below 2^7.5) times 2^7 stays 2^14 under the decryption's smudging (2^29 at train), as for every decryption
_TEST_SCALE_BITS = 7
_MIN_JOBS_FOR_WORKERS = 2
