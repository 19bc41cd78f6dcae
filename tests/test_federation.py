"""The public API end to end: hospitals encrypt, the server evaluates in SEAL, all key holders decrypt."""

import warnings

import numpy as np
import pytest

import mpclr
from mpclr.errors import InsecureParametersWarning, ParameterError, ProtocolError
from mpclr.protocols.share import SecretKeyShare

from .checks import assert_rotated

SLOTS = 4096
TOL = 2e-3  # fresh encryption and smudging at scale 2^30 give ~1e-4; rotations: see conftest.assert_rotated


def test_add_subtract_multiply(fed_fast, rng):
    x, y = rng.uniform(-1, 1, 1000), rng.uniform(-1, 1, 1000)
    a, b = fed_fast.hospitals[0].encrypt(x), fed_fast.hospitals[1].encrypt(y)
    s = fed_fast.server
    assert np.abs(fed_fast.decrypt(s.add(a, b), by=[0, 1, 2]) - (x + y)).max() < TOL
    assert np.abs(fed_fast.decrypt(s.sub(a, b)) - (x - y)).max() < TOL
    prod = s.multiply(a, b)
    assert prod.level == a.level - 1
    assert np.abs(fed_fast.decrypt(prod) - x * y).max() < TOL
    assert np.abs(fed_fast.decrypt(s.multiply_plain(a, y)) - x * y).max() < TOL
    assert np.abs(fed_fast.decrypt(s.add_plain(a, 0.5)) - (x + 0.5)).max() < TOL


@pytest.mark.parametrize("step", [1, 2, 4, -1, 3, 5])
def test_rotations(fed_fast, rng, step):
    """Positive steps rotate left, negative right, over all N/2 slots (3 = 4 - 1 and 5 = 4 + 1 through
    SEAL's NAF fallback)."""
    x = rng.uniform(-1, 1, SLOTS)
    a = fed_fast.hospitals[2].encrypt(x)
    out = fed_fast.decrypt(fed_fast.server.rotate(a, step))
    assert_rotated(out, np.roll(x, -step), TOL, key_switches=1 if step in (1, 2, 4, -1) else 2)


def test_depth_three_polynomial(fed_fast, rng):
    x = rng.uniform(-1, 1, SLOTS)
    s = fed_fast.server
    a = fed_fast.hospitals[0].encrypt(x)
    x2 = s.square(a)
    x3 = s.multiply(x2, a)
    x6 = s.square(x3)  # depth 3
    p = s.add(s.add(s.multiply_plain(x6, 0.5), x3), s.multiply_plain(a, -2.0))
    p = s.add_plain(p, 0.25)
    assert p.level == fed_fast.ctx.top_level - 4  # three products, then one level for the constants
    expect = 0.5 * x**6 + x**3 - 2 * x + 0.25
    assert np.abs(fed_fast.decrypt(p) - expect).max() < TOL


def test_levels_run_out_with_a_clear_error(fed_fast, rng):
    a = fed_fast.hospitals[0].encrypt(rng.uniform(-1, 1, 8))
    for _ in range(fed_fast.ctx.top_level):
        a = fed_fast.server.square(a)
    with pytest.raises(ProtocolError, match="no multiplicative level left"):
        fed_fast.server.square(a)


def test_missing_rotation_key(fed_fast, rng):
    a = fed_fast.hospitals[0].encrypt(rng.uniform(-1, 1, 8))
    with pytest.raises(ProtocolError, match="generate_rotation_keys"):
        fed_fast.server.rotate(a, 1000)


def test_decryption_missing_a_party_raises_before_sending(fed_fast, rng):
    a = fed_fast.hospitals[0].encrypt(rng.uniform(-1, 1, 8))
    before = fed_fast.network.traffic.total_bytes()
    with pytest.raises(ProtocolError, match="missing: hospital-3"):
        fed_fast.decrypt(a, by=[0, 1])
    with pytest.raises(ProtocolError, match="not a key holder"):
        fed_fast.decrypt(a, by=[0, 1, "mallory"])
    with pytest.raises(ProtocolError, match="twice"):
        fed_fast.decrypt(a, by=[0, 1, 1, 2])
    assert fed_fast.network.traffic.total_bytes() == before


def test_server_holds_no_secret_material(fed_fast):
    seen = set()

    def walk(obj, path):
        if id(obj) in seen or isinstance(obj, str | bytes | int | float | type(None)):
            return
        seen.add(id(obj))
        assert not isinstance(obj, SecretKeyShare), f"secret-key share reachable from server at {path}"
        if isinstance(obj, dict):
            for k, v in obj.items():
                walk(v, f"{path}[{k!r}]")
        elif isinstance(obj, list | tuple | set):
            for i, v in enumerate(obj):
                walk(v, f"{path}[{i}]")
        elif hasattr(obj, "__dict__") and type(obj).__module__.startswith("mpclr"):
            for k, v in vars(obj).items():
                if k not in ("network", "ctx"):  # shared plumbing: the network reaches every node
                    walk(v, f"{path}.{k}")

    walk(fed_fast.server, "server")
    he = fed_fast.server.evaluator.he
    assert he.is_secret_key_empty()
    assert not he.is_public_key_empty() and not he.is_relin_key_empty() and not he.is_rotate_key_empty()


def test_traffic_is_recorded_per_message_type(fed_fast):
    by_type = fed_fast.traffic()["by_type"]
    for step in ("crs.commit", "cpk.commit", "cpk.reveal", "rlk.round1", "rlk.round2"):
        assert by_type[step]["messages"] == 2 * 3  # a request and a reply per party
    # rotation keys: one round per generate_rotation_keys call (the fixture's), not one per key
    assert by_type["gkg.share"]["messages"] == 2 * 3
    assert by_type["rlk.round1"]["bytes"] > 3 * 5 * 6 * 8192 * 8  # 5 digits x 6 primes x N words


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"hospitals": 1}, "hospitals"),
        ({"hospitals": 65}, "hospitals"),
        ({"hospitals": "3"}, "hospitals"),
        ({"preset": "turbo"}, "unknown preset"),
        ({"seed": "x"}, "seed"),
        ({"hospitals": 2, "names": ["a"]}, "names"),
        ({"hospitals": 2, "names": ["a", "a"]}, "distinct"),
    ],
)
def test_bad_parameters(kwargs, match):
    with pytest.raises(ParameterError, match=match):
        mpclr.Federation(**kwargs)


def test_parties_is_the_older_name_of_hospitals(fed_fast):
    """Federation(parties=...), fed.parties and fed.party(...) still work, with a DeprecationWarning."""
    with pytest.warns(DeprecationWarning, match=r"Federation\(parties=\.\.\.\) is now Federation\(hospitals=\.\.\.\)"):
        with pytest.raises(ParameterError, match="parameter hospitals must be an integer in \\[2, 64\\], got 1"):
            mpclr.Federation(parties=1)
    with pytest.warns(DeprecationWarning, match="Federation.hospitals"):
        assert fed_fast.parties == fed_fast.hospitals
    with pytest.warns(DeprecationWarning, match=r"Federation.hospital\("):
        assert fed_fast.party("hospital-2") is fed_fast.hospital(1) is fed_fast.hospitals[1]


def test_insecure_parameters_need_opt_in():
    with pytest.raises(ParameterError, match="exceeds the 128-bit bound"):
        mpclr.Params("toy", 4096, (40, 30, 30, 41), 30, 8)
    with pytest.warns(InsecureParametersWarning, match="INSECURE"):
        p = mpclr.Params("toy", 4096, (40, 30, 30, 41), 30, 8, allow_insecure=True)
    assert not p.is_secure
    with pytest.raises(ParameterError, match="power of two"):
        mpclr.Params("x", 5000, (40, 41), 30, 8)
    with pytest.raises(ParameterError, match="scale_bits"):
        mpclr.Params("x", 8192, (40, 41), 45, 8)


def test_presets_are_secure():
    for p in mpclr.PRESETS.values():
        assert p.is_secure and p.log_qp <= p.max_log_qp_128


def test_params_survive_json_and_a_recorded_opt_in_can_be_refused():
    import json

    for p in mpclr.PRESETS.values():
        assert mpclr.Params.from_json(json.loads(json.dumps(p.to_json()))) == p
    with pytest.warns(InsecureParametersWarning):
        toy = mpclr.Params("toy", 4096, (40, 30, 30, 41), 30, 8, allow_insecure=True).to_json()
    with pytest.raises(ParameterError, match="exceeds the 128-bit bound"):
        mpclr.Params.from_json(toy, allow_insecure=False)


def test_the_fingerprint_covers_every_field_of_a_parameter_set():
    """Every protocol message is bound to its parameter set by SealContext.fingerprint: a hospital must not
    mix shares made under other smudging, masks or noise bounds. Each field of Params changes it."""
    from dataclasses import fields

    from mpclr.seal.context import SealContext

    base = mpclr.get_preset("fast")
    ref = SealContext(base).fingerprint
    changes = {
        "name": "other",
        "smudging_bits": 9,
        "refresh_smudging_bits": 10,
        "refresh_mask_bits": 70,
        "noise_bits": 7,
        "refresh_noise_bits": 7,
        "max_hospitals": 5,
        "study": True,
        "upload": "public-key",
        "description": "another text",
        "scale_bits": 29,
        "coeff_bits": (49, 30, 30, 30, 49),
    }
    settable = {f.name for f in fields(base)} - {"n", "allow_insecure"}  # n: its own test; the opt-in is local
    assert settable == set(changes), settable ^ set(changes)
    for name, value in changes.items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # Pyfhel: 30-bit primes for a 2^29 scale
            assert SealContext(base.with_(**{name: value})).fingerprint != ref, name
    # one spelling per value: an integer and its float are the same set
    assert SealContext(base.with_(smudging_bits=8.0)).fingerprint == ref


def test_deep_preset_one_case():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fed = mpclr.Federation(manifest="exploration", hospitals=2, preset="deep", rotations=[-1])
    x = np.random.default_rng(5).uniform(-1, 1, 8192)
    a = fed.hospitals[0].encrypt(x)
    c = fed.server.rotate(fed.server.multiply(a, fed.hospitals[1].encrypt(x)), -1)
    assert np.abs(fed.decrypt(c) - np.roll(x * x, 1)).max() < 5e-3
    fed.close()


def test_decrypt_many_in_one_round(fed_fast, rng):
    xs = [rng.uniform(-1, 1, 50) for _ in range(3)]
    hs = [fed_fast.hospitals[i].encrypt(x) for i, x in enumerate(xs)]
    before = fed_fast.traffic()
    outs = fed_fast.decrypt_many(hs, labels=["a", "b", "c"])
    spent = fed_fast.network.traffic.since(before)["by_type"]
    assert spent["decrypt.share"]["messages"] == 2 * 3 and spent["ct.fetch"]["messages"] == 2
    for x, out in zip(xs, outs):
        assert np.abs(out - x).max() < TOL
    assert [r["label"] for r in fed_fast.researcher.revealed[-3:]] == ["a", "b", "c"]
