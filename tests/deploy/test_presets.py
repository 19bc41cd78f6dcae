"""The deployment runs studies only on presets whose smudging hides what a study reveals: the coordinator
refuses any other before it contacts a hospital."""

import json

import pytest

from mpclr.deploy.server_app import DeploymentConfig, run_deployed_study
from mpclr.errors import ParameterError


@pytest.mark.parametrize("preset,what", [("fast", "teaching preset"), ("deep", "experiments preset")])
def test_coordinator_refuses_presets_that_cannot_run_a_study(tmp_path, preset, what):
    cfg = DeploymentConfig(output=str(tmp_path), hospitals=3, preset=preset)
    refused = rf"'{preset}' cannot run a whole study: it is an? {what}.*use preset 'train'"
    with pytest.raises(ParameterError, match=refused):
        run_deployed_study(None, cfg)  # no grid: refused before any hospital is looked for
    failed = json.loads((tmp_path / "failed.json").read_text())
    assert failed["phase"] == "setup" and what in failed["error"]


def test_coordinator_refuses_more_hospitals_than_the_smudging_is_sized_for(tmp_path):
    cfg = DeploymentConfig(output=str(tmp_path), hospital_names=[f"hospital-{i}" for i in range(12)], preset="train")
    with pytest.raises(ParameterError, match="sized for up to 10 hospitals"):
        run_deployed_study(None, cfg)


def test_local_launcher_refuses_more_hospitals_than_the_smudging_is_sized_for(tmp_path, capsys):
    from mpclr.deploy.__main__ import main

    assert main(["local", "--hospitals", "11", "--workdir", str(tmp_path)]) == 2
    assert "sized for up to 10 hospitals" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())  # no certificate, keystore or log: nothing was started


def test_run_config_hospitals_and_its_older_name_parties(tmp_path):
    assert DeploymentConfig.from_run_config({"output": str(tmp_path), "hospitals": 4}).hospitals == 4
    cfg = DeploymentConfig.from_run_config({"output": str(tmp_path), "hospital-names": "a,b"})
    assert (cfg.hospitals, cfg.hospital_names) == (2, ["a", "b"])
    with pytest.warns(DeprecationWarning, match="`sites` is now called `hospital-names`"):
        assert DeploymentConfig.from_run_config({"output": str(tmp_path), "sites": "a,b"}).hospital_names == ["a", "b"]
    with pytest.raises(ParameterError, match="`sites` is the older name of `hospital-names`"):
        DeploymentConfig.from_run_config({"output": str(tmp_path), "sites": "a,b", "hospital-names": "a,b"})
    with pytest.warns(DeprecationWarning, match=r"DeploymentConfig\(sites=...\) is now"):
        assert DeploymentConfig(output=str(tmp_path), sites=["a", "b"]).hospital_names == ["a", "b"]
    with pytest.warns(DeprecationWarning, match="`parties` is now called `hospitals`"):
        assert DeploymentConfig.from_run_config({"output": str(tmp_path), "parties": 5}).hospitals == 5
    with pytest.raises(ParameterError, match="`parties` is the older name of `hospitals`"):
        DeploymentConfig.from_run_config({"output": str(tmp_path), "parties": 5, "hospitals": 5})
