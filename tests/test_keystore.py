"""A federation saved to per-node keystores resumes with the same session, keys and ciphertexts."""

import os

import numpy as np
import pytest

import mpclr
from mpclr.errors import FormatError, ProtocolError
from mpclr.keystore import Keystore
from mpclr.wire import KIND_REQUEST

from .checks import assert_rotated


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    path = tmp_path_factory.mktemp("study")
    fed = mpclr.Federation(parties=3, threshold=2, preset="fast", rotations=[1])
    x = np.linspace(-1, 1, 16)
    a = fed.parties[0].encrypt(x)
    fed.researcher.ensure_keys()
    old_request = fed.server._seal(KIND_REQUEST, "no.such.step", "hospital-1", {})
    fed.parties[0].handle(old_request)  # delivered once before the save
    fed.save(path)
    fed.close()
    return path, a, x, old_request


def test_resumed_federation_decrypts_refreshes_and_switches(saved):
    path, a, x, _ = saved
    fed = mpclr.Federation.load(path)
    assert np.abs(fed.decrypt(a, by=[0, 2]) - x).max() < 2e-3  # ciphertext from before the save
    b = fed.server.rotate(fed.parties[1].encrypt(x), 1)  # rotation key and public key survived
    rolled = np.roll(np.pad(x, (0, fed.params.slots - x.size)), -1)
    assert_rotated(fed.decrypt(b, by=[1, 2]), rolled, 2e-3)
    assert_rotated(fed.receive(b, by=[0, 1]), rolled, 2e-3)
    r = fed.refresh(fed.server.multiply_plain(b, 2.0), bound_bits=4)
    assert r.level == fed.ctx.top_level
    fed.close()


def test_secrets_are_private_files(saved):
    path, *_ = saved
    node = path / "nodes" / "hospital-2"
    assert os.stat(node).st_mode & 0o777 == 0o700
    secrets = sorted(p.name for p in node.iterdir() if p.name.startswith("secret-"))
    assert secrets == ["secret-fold-key.bin", "secret-identity.bin", "secret-key-share.bin",
                       "secret-threshold-share.bin"]
    for name in secrets:
        assert os.stat(node / name).st_mode & 0o777 == 0o600
    server_files = {p.name for p in (path / "nodes" / "server").iterdir()}
    assert {n for n in server_files if n.startswith("secret-")} == {"secret-identity.bin"}  # signing key only


def test_loose_permissions_are_refused(saved, tmp_path):
    path, *_ = saved
    ks = Keystore(tmp_path / "k", create=True)
    ks.put_secret("x", b"1")
    os.chmod(tmp_path / "k" / "secret-x.bin", 0o644)
    with pytest.raises(FormatError, match="readable by others"):
        ks.get_secret("x")


def test_replay_protection_survives_a_restart(saved):
    path, _, _, old_request = saved
    fed = mpclr.Federation.load(path)
    reply = fed.parties[0].handle(old_request)  # the same request, delivered again after the restart
    with pytest.raises(ProtocolError, match="replayed"):
        fed.server._reply_fields("hospital-1", "no.such.step", reply)
    fed.close()


def test_wrong_keystore_is_refused(saved, tmp_path):
    path, *_ = saved
    fed = mpclr.Federation.load(path)
    with pytest.raises(FormatError, match="belongs to"):
        fed.parties[0].load(Keystore(path / "nodes" / "hospital-2"))
    with pytest.raises(mpclr.ParameterError, match="no saved federation"):
        mpclr.Federation.load(tmp_path)
    fed.close()
