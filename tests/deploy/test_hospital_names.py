"""The deployment says "hospital" everywhere a user reads; the older "site" names still work, with a notice."""

import warnings

import pytest

from mpclr.deploy.__main__ import main
from mpclr.deploy.hospital import HospitalConfig, HospitalFailure
from mpclr.deploy.local import HospitalSpec, LocalDeployment
from mpclr.deploy.supernode import hospital_config

BODY = 'name = "hospital-2"\nkeystore = "/tmp/ks"\ndata = "breast_cancer"\nmin-cell = 7\n'


def test_hospital_section_and_its_older_name_site(tmp_path):
    new, old, both = tmp_path / "new.toml", tmp_path / "old.toml", tmp_path / "both.toml"
    new.write_text("[hospital]\n" + BODY)
    old.write_text("[site]\n" + BODY)
    both.write_text("[hospital]\n" + BODY + "\n[site]\n" + BODY)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sc, _ = hospital_config(new)
    with pytest.warns(DeprecationWarning, match=r"the \[site\] section is now called \[hospital\]"):
        assert hospital_config(old)[0] == sc
    assert (sc.name, sc.min_cell) == ("hospital-2", 7)
    with pytest.raises(HospitalFailure, match=r"\[site\] is the older name of \[hospital\]"):
        hospital_config(both)


def test_node_config_key_site_name_still_read():
    new = HospitalConfig.from_mapping({"hospital-name": "h-1", "keystore": "/tmp/k", "data": "d"})
    assert HospitalConfig.from_mapping({"site-name": "h-1", "keystore": "/tmp/k", "data": "d"}) == new
    assert "hospital-name=" in new.node_config() and "site-name" not in new.node_config()
    with pytest.raises(HospitalFailure, match="lacks hospital-name"):
        HospitalConfig.from_mapping({"keystore": "/tmp/k", "data": "d"})


def test_cli_site_is_the_older_name_of_hospital(tmp_path, monkeypatch, capsys):
    ran = []
    monkeypatch.setattr("mpclr.deploy.supernode.run_hospital", ran.append)  # the SuperNode itself is not started
    assert main(["hospital", "--config", "a.toml"]) == 0
    assert "now called" not in capsys.readouterr().err
    assert main(["site", "--config", "b.toml"]) == 0
    assert "`site` is now called `hospital`" in capsys.readouterr().err
    assert ran == ["a.toml", "b.toml"]


def test_local_deployment_keyword_sites_still_read(tmp_path):
    specs = [HospitalSpec("hospital-1", "breast_cancer", "1/2"), HospitalSpec("hospital-2", "breast_cancer", "2/2")]
    with pytest.warns(DeprecationWarning, match=r"LocalDeployment\(sites=...\) is now"):
        dep = LocalDeployment(tmp_path, sites=specs)
    assert dep.hospitals == specs


def test_notebook_table_reads_new_and_older_result_records():
    from mpclr.notebooks.deployed import hospital_rows

    bytes_ = {"hospital-1": {"sent": 2e6, "received": 1e6}, "hospital-2": {"sent": 3e6, "received": 1e6}}
    new = hospital_rows({"bytes_per_hospital": bytes_, "unavailable": ["hospital-2"]})
    assert new == hospital_rows({"bytes_per_site": bytes_, "unavailable": ["hospital-2"]})  # a record of before
    assert [(r["hospital"], r["sent MB"], r["answered to the end"]) for r in new] == [("hospital-1", 2.0, True),
                                                                                      ("hospital-2", 3.0, False)]
