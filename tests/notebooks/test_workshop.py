"""mpclr.workshop: what the teaching notebook shows must be true of the real protocols."""

import numpy as np
import pytest

from mpclr import workshop
from mpclr.errors import ParameterError
from mpclr.params import get_preset


@pytest.fixture(scope="module")
def demo():
    d = workshop.Demo(hospitals=3)
    yield d
    d.close()


def test_all_key_holders_decrypt(demo):
    dec = demo.decrypt()
    assert dec.correct and dec.enough and dec.max_error < 1e-3
    assert dec.who == ["hospital-1", "hospital-2", "hospital-3"]
    assert "decrypted" in dec.summary()


@pytest.mark.parametrize("who", [[0, 1], [2], ["hospital-2", "hospital-3"]])
def test_too_few_shares_give_noise(demo, who):
    dec = demo.decrypt(who)
    assert not dec.enough and not dec.correct
    assert dec.max_error > 1e3  # uniformly random, nowhere near the signal
    assert "not enough shares, the result is noise" in dec.summary()


def test_nobody_and_out_of_range(demo):
    assert not demo.decrypt([]).correct
    with pytest.raises(ParameterError, match="hospital index 3 out of range"):
        demo.decrypt([3])


def test_any_t_of_n_decrypt_and_fewer_do_not():
    d = workshop.Demo(hospitals=4, threshold=2)
    try:
        assert d.needed == 2
        for who in ([0, 1], [1, 3], [0, 2, 3]):
            assert d.decrypt(who).correct, who
        for who in ([0], [3]):
            dec = d.decrypt(who)
            assert not dec.enough and not dec.correct and dec.max_error > 1e3
    finally:
        d.close()


def test_a_partial_decryption_looks_uniform_and_the_combination_does_not(demo):
    view = demo.partial_view(1)
    s = view.summary()
    assert view.hospital == "hospital-2" and round(s["q0_bits"]) == 49 and round(s["scale_bits"]) == 30
    # uniform on (-q0/2, q0/2): std = q0 / sqrt(12), i.e. about q0_bits - 1.8 bits
    assert abs(s["share_spread_bits"] - (s["q0_bits"] - 1.79)) < 0.2
    assert abs(s["too_few_spread_bits"] - (s["q0_bits"] - 1.79)) < 0.2
    assert s["plaintext_spread_bits"] < s["scale_bits"]  # the scaled signal plus small noise
    assert view.share.shape == (demo.fed.ctx.n,)


def test_noise_by_depth_spends_one_prime_per_product(demo):
    rows = demo.noise_by_depth()
    assert [r["depth"] for r in rows] == list(range(demo.fed.ctx.top_level + 1))
    assert [r["level"] for r in rows] == list(range(demo.fed.ctx.top_level, -1, -1))
    drops = np.diff([r["modulus_bits"] for r in rows])
    assert np.allclose(drops, -30, atol=0.1)  # the fast preset's rescaling primes have 30 bits
    assert all(r["max_error"] < 1e-3 for r in rows)


def test_larger_scale_buys_precision_and_costs_depth():
    by_scale = workshop.noise_by_depth(scales=(25, 40), hospitals=2)
    assert len(by_scale[25]) == 5 and len(by_scale[40]) == 3  # depth 4 vs 2 within the 128-bit bound
    worst25 = max(r["max_error"] for r in by_scale[25])
    worst40 = max(r["max_error"] for r in by_scale[40])
    assert worst40 < worst25 / 100


def test_smudging_costs_precision():
    rows = workshop.smudging_sweep([0, 24], hospitals=2)
    assert [r["smudging_bits"] for r in rows] == [0.0, 24.0]
    assert rows[0]["max_error"] < 1e-3 < rows[1]["max_error"]
    assert rows[1]["max_error"] > 100 * rows[0]["max_error"]


def test_params_variants():
    fast = get_preset("fast")
    assert workshop.params_variant("fast") is fast
    p = workshop.params_variant("fast", smudging_bits=12, scale_bits=35)
    assert p.name == "fast/smudging=12,scale=35"
    assert p.coeff_bits == (54, 35, 35, 35, 54) and p.is_secure and p.smudging_bits == 12
    assert workshop.params_variant("fast", scale_bits=25).depth == 4  # never deeper than the preset
    deep = workshop.params_variant("deep", scale_bits=30)
    assert deep.is_secure and deep.coeff_bits[1:-1] == (30,) * 8
    with pytest.raises(ParameterError, match="scale_bits = 45 is too large for preset 'fast'"):
        workshop.params_variant("fast", scale_bits=45)
    with pytest.raises(ParameterError, match="smudging_bits"):
        workshop.params_variant("fast", smudging_bits=50)


def test_explore_reuses_federations_until_n_t_or_parameters_change():
    workshop.close_all()
    a = workshop.explore(3, None, [0, 1, 2])
    demo = next(iter(workshop._CACHE.values()))
    b = workshop.explore(3, None, [0, 1])
    assert len(workshop._CACHE) == 1 and next(iter(workshop._CACHE.values())) is demo
    assert a.correct and not b.correct
    workshop.explore(3, None, None, smudging_bits=4.0)
    assert len(workshop._CACHE) == 2
    workshop.close_all()
    assert not workshop._CACHE


def test_plots_draw():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    d = workshop.Demo(hospitals=2)
    try:
        figs = [
            workshop.plot_decryption(d.decrypt()),
            workshop.plot_decryption(d.decrypt([0])),
            workshop.plot_partial(d.partial_view()),
            workshop.plot_noise({30: d.noise_by_depth()}),
            workshop.plot_sweep([{"smudging_bits": 0.0, "max_error": 1e-5}, {"smudging_bits": 8.0, "max_error": 1e-4}]),
        ]
        assert "noise" in figs[1].axes[0].get_title() and len(figs[2].axes) == 3
    finally:
        d.close()
        plt.close("all")


def test_record_summary():
    rec = workshop.Record(
        parameters={"hospitals": 3},
        decryption={"max_error": 1e-5},
        too_few={"max_error": 1e6},
        noise_by_depth=[{"max_error": 2e-5}],
    )
    assert rec.to_json()["summary"] == {"max_error": 1e-5, "too_few_max_error": 1e6, "depth_max_error": 2e-5}
