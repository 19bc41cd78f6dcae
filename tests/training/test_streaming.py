"""Rows spooled to disk (mpclr.training.spool) give the ciphertexts rows in memory give, bit for bit.

The key holders' refreshes draw fresh randomness every time, so the second training replays the first
one's refresh rounds after checking that the server asks them for exactly the same ciphertexts: every
ciphertext the server computes between refreshes, and the trained models, must then be identical."""

import hashlib
import os

import numpy as np
from Pyfhel import PyCtxt

from mpclr.evaluation.secure import SecureEvaluation
from mpclr.plain.sigmoid import sigmoid_poly
from mpclr.roles import encryptor
from mpclr.training import hospital as training_hospital
from mpclr.training import party
from mpclr.training.cv import encrypt_study
from mpclr.training.encrypted import TrainingPlan
from mpclr.training.party import ciphertext_bytes, design_rows
from mpclr.training.spool import Spool

from .test_encrypted_training import SCHEDULE, make_data, nesterov_reference, tolerance


class Replay:
    """Stands in for server.refresh_raw: records real refresh rounds, then replays them to a second run
    after checking that run's inputs are byte for byte the first run's."""

    def __init__(self, server):
        self.server, self.real = server, server.refresh_raw
        self.rounds, self.replaying, self.next = [], False, 0

    def __call__(self, cts, levels, outputs, *args, **kwargs):
        asked = [hashlib.sha256(ct.to_bytes(compr_mode="none")).hexdigest() for ct in cts]
        if not self.replaying:
            fresh = self.real(cts, levels, outputs, *args, **kwargs)
            self.rounds.append((asked, list(levels), outputs, [ct.to_bytes(compr_mode="none") for ct in fresh]))
            return fresh
        want_asked, want_levels, want_outputs, fresh = self.rounds[self.next]
        self.next += 1
        assert list(levels) == want_levels and outputs == want_outputs
        assert asked == want_asked, f"refresh round {self.next}: the server asked for other ciphertexts"
        out = []
        for raw in fresh:
            ct = PyCtxt(pyfhel=self.server.evaluator.he)
            ct.from_bytes(raw, scheme="ckks")
            out.append(ct)
        return out


def in_memory(spool: Spool) -> Spool:
    copy = Spool(threshold=1 << 40)
    for key, raws in spool.items():
        for raw in raws:
            copy.add(key, raw)
    return copy


def test_rows_on_disk_train_and_score_to_the_same_ciphertexts(fed_train, tmp_path, monkeypatch):
    """Training (degree 5: block by block, in two worker processes that read their blocks from the file
    themselves, kept compact and unpacked as read, keeping what their budget allows loaded), then the
    secure evaluation's scores, from rows on disk and from the same rows in memory.
    (Degree 7's step-by-step path streams in test_degree_seven_refreshes_mid_iteration.)"""
    fed = fed_train
    X, y = make_data(2500, 3, seed=3)  # 5 folds of 500 rows: small enough that the features are packed
    for p, rows in zip(fed.hospitals, np.array_split(np.arange(len(y)), 2)):
        p.load_data(X[rows], y[rows], rows)
    monkeypatch.setattr(party, "UPLOAD_ROUND_BYTES", 1)  # one block per round: the upload takes several
    monkeypatch.setattr(training_hospital, "PROCESS_MIN_CIPHERTEXTS", 1)  # each hospital encrypts in a process
    stopped, done = [], encryptor.done

    def spy(owner):  # the process a hospital encrypted its rows in, stopped after its last round
        stopped.append(encryptor._POOLS.get(owner) is not None)
        done(owner)

    monkeypatch.setattr(encryptor, "done", spy)
    before = fed.traffic()["by_type"].get("lr.encrypt", {"messages": 0})["messages"]
    cv = encrypt_study(fed, folds=5, spool=Spool(0, tmp_path, compact=True))  # kept in the packed wire form
    assert cv.layout.packed  # streaming and small studies' packing (mpclr.training.layout) together
    assert cv.blocks.on_disk and os.fstat(cv.blocks.fileno()).st_size == cv.blocks.nbytes
    assert cv.blocks.nbytes < 0.8 * cv.blocks.count() * ciphertext_bytes(fed.params)  # residues at their widths
    assert os.path.dirname(cv.blocks.path) == str(tmp_path) and os.listdir(tmp_path) == []  # no name to leak
    pairs = [sum(1 for g in cv.layout.groups for b in cv.layout.blocks_with_rows(g, p.require_data()[2]))
             for p in fed.hospitals]
    rounds = (fed.traffic()["by_type"]["lr.encrypt"]["messages"] - before) // 2
    assert rounds == sum(pairs) > len(fed.hospitals)  # every hospital a round per block it has rows in
    assert max(len(cv.blocks[k]) for k in cv.blocks) == 2  # blocks both hospitals have rows in
    assert stopped == [True, True] and not any(p in encryptor._POOLS for p in fed.hospitals)
    plan = TrainingPlan(sigmoid_poly(5, 8.0), SCHEDULE[:3])  # two gradients: forwards, then backwards

    # each worker keeps about one block loaded between iterations and reads the others every time
    one = cv.layout.groups[0].chunks(cv.features) * len(cv.blocks[next(iter(cv.blocks))][0])
    cv.blocks.threshold = 2 * one  # a worker keeps one block loaded (no masked copies beside it)
    replay = Replay(fed.server)
    monkeypatch.setattr(fed.server, "refresh_raw", replay)
    cv.train(fed, plan, workers=2)
    streamed = dict(cv.weights)
    assert cv.trainer.log.workers == 2 and cv.trainer._spool is cv.blocks

    disk = cv.blocks
    cv.blocks, cv.weights = in_memory(disk), {}
    replay.replaying = True
    cv.train(fed, plan, workers=2)
    assert cv.trainer._spool is None and replay.next == len(replay.rounds) > len(plan.schedule)
    assert cv.weights.keys() == streamed.keys()
    assert all(cv.weights[k] == streamed[k] for k in streamed)
    disk.close()
    W = cv.decrypt_models(fed)  # the rows the hospitals' processes encrypted trained the right models
    ref = nesterov_reference(design_rows(X, y, cv.mean, cv.std), cv.fold_of_row, 5, plan)
    assert np.abs(W - ref).max() < tolerance(fed) and np.abs(ref).max() > 0.05

    ev = SecureEvaluation(fed, cv, spool=Spool(0, tmp_path), workers=0)
    ev.encrypt_rows()
    disk = ev.data
    assert disk.on_disk and os.path.dirname(disk.path) == str(tmp_path) and os.listdir(tmp_path) == []
    scored = []
    for rows in (disk, in_memory(disk)):  # the same evaluation rows, on disk, then in memory
        ev.data = rows
        ev.compute_scores()
        scored.append([(name, k, x.ct.to_bytes(compr_mode="none"))
                       for name, part in (("score", ev.scores), ("label", ev.labels)) for k, x in sorted(part.items())])
    assert scored[0] == scored[1] and len(scored[0]) > 2
    disk.close()
