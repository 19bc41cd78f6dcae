"""Share-keyed uploads through the nodes (mpclr.roles.uploads): the ceremony makes every hospital's upload
key (before the t-out-of-n re-sharing), uploads are half-size and decrypt to the values, in a thread and in
an encryption process, after a save and load; a hospital gives its key shares once, to the server, for
the key holders only; the public-key mode makes no keys. "auto" (the default) resolves to the mode of the
study's plan: public-key for a small study or none, share-keyed at paper scale (mpclr.upload_mode)."""

import numpy as np
import pytest

import mpclr
from mpclr.errors import ParameterError, ProtocolError
from mpclr.manifest import StudyPlan
from mpclr.params import get_preset
from mpclr.protocols.upload import is_share_keyed
from mpclr.roles import encryptor
from mpclr.roles.policy import Budget, Manifest, merge_manifests
from mpclr.upload_mode import for_study, planned_mode

SHARE_KEYED = get_preset("fast").with_(upload="share-keyed")


def refused(node, hospital: str, step: str, match: str, **fields) -> None:
    with pytest.raises(ProtocolError, match=f"{hospital} refused {step}: .*{match}"):
        node.call(hospital, step, **fields)


@pytest.fixture(scope="module")
def fed():
    """2-out-of-3 under a study manifest planning share-keyed uploads (the "auto" preset takes them): the key
    ceremony (upk.share included) once, three decryptions."""
    m = Manifest("uploads", (*Manifest.keys_only(threshold_setup=True).budgets, Budget("decrypt.share", "x", 3, 3, 1)),
                 plan={"upload": "share-keyed"})
    f = mpclr.Federation(hospitals=3, threshold=2, preset="fast", manifest=m)
    assert f.params.upload == "share-keyed" and all(n.ctx is f.ctx for n in (f.server, *f.hospitals))
    yield f
    f.close()


def test_uploads_are_share_keyed_half_size_and_decrypt(fed):
    h = fed.hospitals[1]
    x = np.random.default_rng(1).uniform(-2, 2, 300)
    raw = h.encrypt_bytes(x)
    public = encryptor.encrypt_many(h, h._encryptor(), [x], False, encryptor.level_plans(fed.ctx, None, 1))[0]
    assert is_share_keyed(raw) and not is_share_keyed(public)
    assert len(raw) < 0.52 * len(public)
    assert sorted(fed.server.uploads.owners) == sorted(p.name for p in fed.hospitals)
    c = h.encrypt(x)  # ct.upload, switched by the server
    assert np.abs(fed.decrypt(c, by=[0, 2], label="x") - x).max() < 1e-3  # hospital-2 need not take part
    # an encryption process of the hospital's own, at two levels
    raws = h.encrypt_many([x, 2 * x], processes=True, levels=[None, fed.ctx.top_level - 1])
    encryptor.done(h)
    assert all(is_share_keyed(r) for r in raws)
    for r, want in zip(raws, (x, 2 * x)):
        handle = fed.server.import_ciphertext(fed.server.uploads.load(r, "test upload", h.name), len(x))
        assert np.abs(fed.decrypt(handle, by=[1, 2], label="x") - want).max() < 1e-3


def test_an_upload_is_switched_only_with_its_senders_key(fed):
    raw = fed.hospitals[0].encrypt_bytes(np.ones(4))
    with pytest.raises(ProtocolError, match="researcher, which has no upload key"):
        fed.server.uploads.load(raw, "an upload", "researcher")


def test_the_manifest_allows_one_upk_share_round(fed):
    holders = [p.name for p in fed.hospitals]
    refused(fed.server, holders[0], "upk.share", r"allows 1 round \(1 answered\)", owners=holders)


def test_a_hospital_gives_its_upload_key_shares_once_to_the_server_for_the_key_holders():
    f = mpclr.Federation(hospitals=2, preset=SHARE_KEYED, manifest="exploration")  # no budget: the handler's checks
    try:
        holders = [p.name for p in f.hospitals]
        h = holders[0]
        refused(f.server, h, "upk.share", "answered already in this session", owners=holders)
        refused(f.server, h, "upk.share", "must be the session's key holders", owners=[*holders, "server"])
        refused(f.server, h, "upk.share", "must be the session's key holders", owners=holders[:1])
        refused(f.server, h, "upk.share", "must be the session's key holders", owners=[holders[0], holders[0]])
        refused(f.researcher, h, "upk.share", "only taken from the session's server", owners=holders)
    finally:
        f.close()


def test_upload_keys_survive_a_save_and_load(tmp_path):
    f = mpclr.Federation(hospitals=2, preset=SHARE_KEYED, manifest="exploration")
    f.save(tmp_path / "fed")
    f.close()
    again = mpclr.Federation.load(tmp_path / "fed")
    try:
        h = again.hospitals[1]
        raw = h.encrypt_bytes(np.arange(5.0))
        assert is_share_keyed(raw)
        c = again.server.import_ciphertext(again.server.uploads.load(raw, "upload", h.name), 5)
        assert np.abs(again.decrypt(c) - np.arange(5.0)).max() < 1e-3
    finally:
        again.close()


def test_the_public_key_mode_makes_no_upload_keys():
    f = mpclr.Federation(hospitals=2, preset="fast", manifest="exploration")  # "auto", no study planned
    try:
        assert f.params.upload == "public-key" and f.ctx.params.upload == "public-key"
        assert f.server.uploads.owners == []
        assert not is_share_keyed(f.hospitals[0].encrypt_bytes(np.ones(3)))
        assert np.abs(f.decrypt(f.hospitals[0].encrypt(np.ones(3))) - 1).max() < 1e-3
        refused(f.server, f.hospitals[0].name, "upk.share", "upload with the public key",
                owners=[p.name for p in f.hospitals])
    finally:
        f.close()


def _plan(rows, features, folds, upload="auto"):
    sizes = [len(a) for a in np.array_split(np.arange(sum(rows)), folds)]
    return StudyPlan(("hospital-1", "hospital-2", "hospital-3"), 3, get_preset("train").with_(upload=upload),
                     sum(rows), features, folds, (0.0, 0.5), 5, evaluation={"score_bound": 16.0},
                     fold_sizes=tuple(sizes), hospital_rows=tuple(rows))


def test_auto_follows_the_bytes_small_studies_upload_with_the_public_key_paper_scale_share_keyed():
    small, paper = _plan([190, 190, 189], 30, 5), _plan([16384] * 3, 10, 10)  # breast cancer; the paper's
    assert (small.params.upload, paper.params.upload) == ("public-key", "share-keyed")
    assert small.describe()["upload"] == "public-key" and paper.describe()["upload"] == "share-keyed"
    assert _plan([16384] * 3, 10, 10, "public-key").params.upload == "public-key"  # a concrete mode is kept
    # a federation takes the plan's mode; a concrete mode the plan contradicts is refused
    m = Manifest("s", plan=paper.describe())
    assert for_study(get_preset("train"), m).upload == "share-keyed" and planned_mode(Manifest("k")) is None
    with pytest.raises(ParameterError, match="upload is 'public-key' but the study manifest plans"):
        for_study(get_preset("train").with_(upload="public-key"), m)
    assert planned_mode(merge_manifests("both", Manifest("a", (Budget("x"),), plan=paper.describe()),
                                        Manifest("b", (Budget("y"),)))) == "share-keyed"


def test_in_one_process_auto_uploads_with_the_public_key_a_deployment_by_its_bytes():
    """Nothing travels in one process: the pipeline's plan takes public-key at paper scale, where the
    deployment's plan (mpclr.deploy.study, params given) takes share-keyed."""
    from mpclr.pipeline import study_plan
    from mpclr.spec import StudySpec

    spec, sizes = StudySpec(hospitals=3, folds=10), [4916] * 2 + [4915] * 8
    rows = {"hospital_rows": (16384,) * 3}
    assert study_plan(spec, 49152, 10, sizes, **rows).params.upload == "public-key"
    assert study_plan(spec, 49152, 10, sizes, params=get_preset("train"), **rows).params.upload == "share-keyed"
