"""The Flower settings mpclr.deploy changes, and the hospital configuration as Flower parses it."""

from __future__ import annotations

import time

import pytest

pytest.importorskip("flwr")

from mpclr.deploy.appdir import DEFAULTS, run_config_args, write_app  # noqa: E402
from mpclr.deploy.hospital import HospitalConfig  # noqa: E402
from mpclr.deploy.tuning import Pacer, _PacedTime, fast_object_pulls  # noqa: E402


def test_object_pulls_retry_fast_and_chunks_are_8_mib():
    import flwr.app.message.array as arr
    import flwr.supercore.inflatable.inflatable_utils as iu

    fast_object_pulls()
    assert iu.pull_objects.__kwdefaults__["initial_backoff"] == 0.01
    assert iu.pull_and_inflate_object_from_tree.__kwdefaults__["backoff_cap"] == 1.0
    assert arr.FLWR_PRIVATE_MAX_ARRAY_CHUNK_SIZE == 8 << 20


def test_pacer_polls_fast_while_busy_and_slowly_when_idle():
    p = Pacer(poll=0.01, idle_poll=0.5, idle_after=0.05, reply_poll=0.002)
    paced = _PacedTime(p)
    t0 = time.perf_counter()
    paced.sleep(3)  # the SuperNode's idle sleep
    assert time.perf_counter() - t0 < 0.2
    time.sleep(0.06)
    assert p.interval() == 0.5  # idle for longer than idle_after
    t0 = time.perf_counter()
    paced.sleep(0.5)  # waiting for a reply: a message is being handled, in steps of reply_poll
    assert time.perf_counter() - t0 < 0.1
    assert p.interval() == 0.01 and p.work.is_set()
    assert paced.time() > 0  # everything else is the real time module


def test_hospital_configuration_survives_flowers_node_config_parser(tmp_path):
    from flwr.common.config import parse_config_args

    sc = HospitalConfig("hospital-2", str(tmp_path / "key store"), str(tmp_path / "data, 2024.csv"), "2/3", "outcome")
    parsed = parse_config_args([sc.node_config()])
    assert HospitalConfig.from_mapping(parsed) == sc
    for changed in (HospitalConfig("hospital-2", sc.keystore, sc.data, encrypt=False),
                    HospitalConfig("hospital-2", sc.keystore, sc.data, passphrase_file=str(tmp_path / "pass phrase"))):
        assert HospitalConfig.from_mapping(parse_config_args([changed.node_config()])) == changed


def test_app_folder_is_a_valid_flower_app(tmp_path):
    from flwr.cli.config_utils import load_and_validate

    folder = write_app(tmp_path / "app")
    config, warnings = load_and_validate(folder / "pyproject.toml")
    assert config["tool"]["flwr"]["app"]["components"]["clientapp"] == "mpclr.deploy.apps:client_app"
    assert set(DEFAULTS) <= set(config["tool"]["flwr"]["app"]["config"])
    assert run_config_args({"hospital-names": "a,b", "threshold": 2}) == ["--run-config", 'hospital-names="a,b"',
                                                                       "--run-config", "threshold=2"]
    with pytest.raises(KeyError):
        run_config_args({"no-such-key": 1})


def test_every_option_of_the_default_study_can_be_set_through_flower():
    """The study options the default study reads must be keys of the app's configuration: `flwr run`
    only takes --run-config keys the app declares (run_config_args refuses the others)."""
    from mpclr.deploy.study import OPTIONS
    from mpclr.notebooks import Study
    from mpclr.notebooks.deployed import run_config

    assert set(OPTIONS) <= set(DEFAULTS)
    args = run_config_args({"evaluation": "none", "score-bound": 20.0, "decrypt-models": False})
    assert args == ["--run-config", 'evaluation="none"', "--run-config", "score-bound=20.0",
                    "--run-config", "decrypt-models=false"]
    config = run_config(Study(), decrypt_models=False)  # what notebook 06 submits
    assert config["decrypt-models"] is False
    run_config_args(config)  # every key it sets is the app's


def test_the_local_deployment_refuses_a_preset_that_cannot_run_its_study(capsys):
    from mpclr.deploy.__main__ import main

    with pytest.raises(SystemExit) as stop:
        main(["local", "--preset", "fast"])  # refused before a certificate is made or a process started
    assert stop.value.code == 2
    assert "'fast' cannot run a whole study" in capsys.readouterr().err
