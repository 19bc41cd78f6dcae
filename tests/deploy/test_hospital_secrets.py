"""What a hospital keeps on disk after the protocol steps that use its secrets (issue 12, part 3), driven in
process through the stand-in Flower grid of test_transport.py: no spent protocol secret, no additive
share once it is re-shared, and no decryption, key-switch or refresh share in the reply cache."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest

pytest.importorskip("flwr")

from flwr.app import Message  # noqa: E402
from flwr.supercore.task_identity import TaskIdentity  # noqa: E402

from mpclr.deploy.hospital import answer  # noqa: E402
from mpclr.deploy.server_app import run_deployed_study  # noqa: E402
from mpclr.deploy.transport import decode_reply  # noqa: E402
from mpclr.keystore_crypto import PASSPHRASE_ENV  # noqa: E402

from .test_transport import PASSPHRASE, FakeGrid, _node_config, make_data, study_config, write_hospitals  # noqa: E402

SHARE_STEPS = ("decrypt.share", "pcks.share", "refresh.share")
X_PLAIN = np.linspace(-1, 1, 8)


def refresh_decrypt_switch(fed, config) -> dict:
    """A study hook in which every hospital makes each kind of share: a refresh (hospital-3's reply is lost on
    the way, see the grid below), a decryption and a key switch to the researcher."""
    ct = fed.server.evaluator.he.encryptFrac(X_PLAIN, scale=2.0**fed.params.scale_bits)
    h = fed.server.import_ciphertext(ct.to_bytes(compr_mode="none"), X_PLAIN.size)
    refreshed = fed.refresh(fed.server.multiply_plain(h, 2.0), bound_bits=4)
    return {"refreshed": fed.decrypt(refreshed).tolist(), "received": fed.receive(h).tolist()}


def _manifest(info, config):
    """What the hook asks of each hospital: the key ceremony (2-of-3), one refresh, one decryption, one key switch;
    a round redone without a hospital counts against the 2 (n - t) retries."""
    from mpclr.roles.policy import Budget, Manifest, ceremony_budgets

    return Manifest("refresh, decryption and key switch", (
        *ceremony_budgets(threshold_setup=True), Budget("refresh.share", "refresh", 1, 1, 1),
        Budget("decrypt.share", "ciphertext", 1, 1, 1), Budget("researcher.key"),
        Budget("pcks.share", "ciphertext", 1, 1, 1),
    ), retries=2)


refresh_decrypt_switch.manifest = _manifest


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("secrets")
    X, y = make_data(n=90)
    grid = FakeGrid(write_hospitals(tmp, X, y))
    grid.sent = []

    def on_push(g, msgs):
        g.sent.extend(msgs)
        if any(m.metadata.group_id == "refresh.share" for m in msgs) and not getattr(g, "lost", False):
            g.lost = True
            g.lose_next.add("hospital-3")  # its refresh share is lost on the way: the transport sends again

    grid.on_push = on_push
    with pytest.MonkeyPatch.context() as mp:  # hospitals encrypt their keystores by default
        mp.setenv(PASSPHRASE_ENV, PASSPHRASE)
        cfg = study_config(tmp, threshold=2)
        cfg.upload = "share-keyed"  # the run config's upload: each hospital keeps an upload secret
        res = run_deployed_study(grid, cfg, study=refresh_decrypt_switch)
        yield tmp, grid, res


def _session(tmp, res, i):
    return tmp / f"keystore-{i}" / "sessions" / res["session"]


def test_the_study_goes_on_without_a_hospital_whose_share_was_lost(run):
    _, grid, res = run
    out = res["study"]
    # up to the smudging of a refresh and of a decryption (2 key holders; 6 sigma per slot)
    from mpclr.params import get_preset

    from ..checks import decryption_flooding, refresh_flooding

    tol = 6 * (decryption_flooding(get_preset("train"), 2) + refresh_flooding(get_preset("train"), 2))
    assert np.abs(np.array(out["refreshed"]) - 2 * X_PLAIN).max() < tol
    assert np.abs(np.array(out["received"]) - X_PLAIN).max() < tol
    # the retried refresh request was refused (no second share of the same ciphertext), so hospital-3
    # counts as unavailable and the round was done again by the two others
    assert res["unavailable"] == ["hospital-3"]
    why = res["unavailable_why"]["hospital-3"]
    assert "refresh.share" in why and "keeps no copy" in why
    assert res["network"]["retries"] == 1


def test_no_spent_secret_and_no_additive_share_stays_at_a_hospital(run):
    tmp, _, res = run
    for i in (1, 2, 3):
        names = sorted(p.name for p in _session(tmp, res, i).glob("secret-*") if not p.name.startswith("secret-reply"))
        # the upload secret is kept for the study's later uploads; it decrypts the hospital's own uploads only
        assert names == ["secret-fold-key.bin", "secret-identity.bin", "secret-threshold-share.bin",
                         "secret-upload-secret.bin"], (i, names)


def test_the_reply_cache_holds_no_share(run):
    tmp, _, res = run
    for i in (1, 2, 3):
        folder = _session(tmp, res, i)
        index = json.loads((folder / "reply-index.json").read_text())
        kept = {name for _, name, _ in index if name is not None}
        assert {p.name for p in folder.glob("secret-reply-*")} == {f"secret-{n}.bin" for n in kept}
        assert all(name is None for _, name, step in index if step in SHARE_STEPS)
        assert {step for _, _, step in index} & set(SHARE_STEPS)  # such replies were made, and not kept


def test_a_retried_share_request_is_refused_with_a_clear_error(run):
    _, grid, res = run
    node_id = next(nid for nid, s in grid.hospitals.items() if s.name == "hospital-1")
    hospital = grid.hospitals[node_id]
    for step in SHARE_STEPS:
        first = [m for m in grid.sent if m.metadata.group_id == step and m.metadata.dst_node_id == node_id][-1]
        again = Message(first.content, dst_node_id=node_id, message_type="query", group_id=step)
        TaskIdentity.run_id = 1
        again.metadata.__dict__["_message_id"] = f"retry-{step}"
        reply = answer(again, SimpleNamespace(node_config=_node_config(hospital)))
        error = decode_reply(reply.content)[1]
        assert f"hospital-1 answered this {step} request before and keeps no copy" in error, error
