"""environment.yml (conda) lists the packages of pyproject.toml with the same versions, so the two cannot drift."""

import re
from pathlib import Path

import pytest

yaml = pytest.importorskip("yaml")
tomllib = pytest.importorskip("tomllib")  # Python 3.11+
from packaging.requirements import Requirement  # noqa: E402
from packaging.specifiers import SpecifierSet  # noqa: E402
from packaging.utils import canonicalize_name  # noqa: E402
from packaging.version import Version  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
TOOLS = {"python", "pip", "cxx-compiler", "cmake"}  # conda's own: the interpreter and what builds Pyfhel


@pytest.fixture(scope="module")
def project():
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


@pytest.fixture(scope="module")
def environment():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    conda = [d for d in env["dependencies"] if isinstance(d, str)]
    pips = [d["pip"] for d in env["dependencies"] if isinstance(d, dict)]
    assert len(pips) == 1, "environment.yml: one pip section"
    return env, conda, pips[0]


def _by_name(specs, where):
    out = {}
    for s in specs:
        r = Requirement(s)
        name = canonicalize_name(r.name)
        assert name not in out, f"{where}: {r.name} is listed twice"
        out[name] = r.specifier
    return out


def test_environment_lists_pyproject_packages_with_the_same_versions(project, environment):
    env, conda, pip = environment
    assert env["name"] == "mpclr" and env["channels"] == ["conda-forge"]
    wanted = _by_name([*project["dependencies"], *(r for rs in project["optional-dependencies"].values() for r in rs)],
                      "pyproject.toml")
    conda_names = {re.match(r"[A-Za-z0-9_.-]+", s).group(0) for s in conda}
    assert TOOLS <= conda_names, f"environment.yml needs {sorted(TOOLS - conda_names)}"
    listed = _by_name([s for s in conda if re.match(r"[A-Za-z0-9_.-]+", s).group(0) not in TOOLS]
                      + [s for s in pip if not s.startswith("-")], "environment.yml")
    assert listed.keys() == wanted.keys(), (f"only in pyproject.toml: {sorted(wanted.keys() - listed.keys())}; "
                                            f"only in environment.yml: {sorted(listed.keys() - wanted.keys())}")
    for name, spec in wanted.items():
        assert listed[name] == spec, f"{name}: pyproject.toml says {spec}, environment.yml {listed[name]}"
    python = next(s for s in conda if s.startswith("python="))
    assert SpecifierSet(project["requires-python"]).contains(Version(python.split("=")[1]))


def test_pip_section_installs_mpclr_with_every_extra_and_the_cached_pyfhel(project, environment):
    _, _, pip = environment
    editable = [s for s in pip if s.startswith("-e ")]
    assert len(editable) == 1
    m = re.fullmatch(r"-e \.\[([a-z,]+)\]", editable[0])
    assert m and set(m.group(1).split(",")) == set(project["optional-dependencies"])
    script = (ROOT / ".ci" / "pyfhel-wheel.sh").read_text()
    version = re.search(r"^VERSION=(\S+)$", script, re.M).group(1)
    assert f"Pyfhel=={version}" in project["dependencies"] and f"Pyfhel=={version}" in pip
    assert "${XDG_CACHE_HOME:-$HOME/.cache}/mpclr/wheels" in script  # the script's default wheelhouse
    assert "--find-links ${HOME}/.cache/mpclr/wheels" in pip and "--only-binary Pyfhel" in pip
