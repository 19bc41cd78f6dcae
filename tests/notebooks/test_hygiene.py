"""Committed notebooks: no outputs, kernel python3, one parameters cell first that agrees with the
registry, a validation cell that checks every parameter, ruff-clean, and every notebook a known step."""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from mpclr.notebooks import PARAMETERS, SEQUENCE, STEPS, declared_parameters, notebooks_dir

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
APP_NOTEBOOKS = sorted((ROOT / "notebooks" / "app").glob("*.ipynb"))  # the pages `mpclr app` serves (Voilà)
BIN = Path(sys.executable).parent


def _tool(name: str) -> str:
    path = BIN / name
    return str(path) if path.exists() else shutil.which(name) or pytest.skip(f"{name} is not installed")


def test_the_notebooks_are_found_through_the_package():
    assert notebooks_dir() == ROOT / "notebooks"
    assert {p.stem for p in NOTEBOOKS} >= {
        "00_study_and_roles",
        "01_key_ceremony",
        "02_data_and_encryption",
        "02b_table_one",
        "03_training",
        "04_evaluation",
        "05_comparison",
        "90_workshop",
    }


@pytest.fixture(params=NOTEBOOKS, ids=lambda p: p.stem)
def notebook(request):
    return request.param, nbformat.read(request.param, as_version=4)


def test_no_outputs_and_no_execution_counts(notebook):
    path, nb = notebook
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            assert cell.outputs == [], f"{path.name} cell {i} has outputs: run nbstripout {path}"
            assert cell.execution_count is None, f"{path.name} cell {i} has an execution count: run nbstripout"
    assert "widgets" not in nb.metadata, f"{path.name} carries saved widget state: run nbstripout"


def test_nbstripout_verify():
    result = subprocess.run([_tool("nbstripout"), "--verify", *map(str, NOTEBOOKS + APP_NOTEBOOKS)],
                            capture_output=True, text=True)
    assert result.returncode == 0, f"nbstripout would change notebooks:\n{result.stdout}{result.stderr}"


def test_kernel_is_python3(notebook):
    path, nb = notebook
    assert nb.metadata.get("kernelspec", {}).get("name") == "python3", f"{path.name}: set the kernel to python3"


def test_one_parameters_cell_and_it_comes_first(notebook):
    path, nb = notebook
    tagged = [i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", [])]
    assert tagged == [0], f"{path.name}: exactly one cell tagged 'parameters', the first, got cells {tagged}"
    assert nb.cells[0].cell_type == "code"


def test_parameters_agree_with_the_registry(notebook):
    """Same name, same type hint, same default as mpclr.notebooks.PARAMETERS (or the default the registry
    names for that notebook); a comment on each line; one `=` per line so papermill's own inspection
    (--help-notebook) can read it."""
    path, nb = notebook
    declared = declared_parameters(nb.cells[0].source, f"{path.name} parameters cell")
    assert declared, f"{path.name}: the parameters cell declares nothing"
    lines = nb.cells[0].source.splitlines()
    for p in declared:
        assert p.name in PARAMETERS, f"{path.name}: {p.name} is not in mpclr.notebooks.PARAMETERS; add it there"
        reg = PARAMETERS[p.name]
        assert p.hint == reg.hint, f"{path.name}: {p.name}: {p.hint}, the registry says {reg.hint}"
        expected = reg.default_for(path.stem)
        assert p.default == expected, f"{path.name}: {p.name} defaults to {p.default!r}, registry {expected!r}"
        assert p.comment, f"{path.name}: {p.name} needs a comment saying what it is"
        assert lines[p.line - 1].count("=") == 1, f"{path.name}: no '=' in {p.name}'s comment (papermill)"
    assert "run_dir" in {p.name for p in declared}, f"{path.name}: every step takes a run_dir"


def test_second_cell_validates_every_parameter(notebook):
    path, nb = notebook
    names = [p.name for p in declared_parameters(nb.cells[0].source)]
    validation = nb.cells[1]
    assert validation.cell_type == "code"
    assert re.search(r"check_parameters\(|Study\.from_parameters\(", validation.source)
    for name in names:
        assert re.search(rf"\b{name}={name}\b", validation.source), f"{path.name}: cell 1 does not check {name}"


def test_notebooks_hold_no_logic(notebook):
    """Narrative, calls and plots only: functions live in mpclr (the workshop's widget callbacks excepted)."""
    path, nb = notebook
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        for m in re.finditer(r"^(def|class) (\w+)", cell.source, re.M):
            assert path.stem == "90_workshop" and m.group(2) in {
                "make_toggles",
                "redraw",
                "on_n",
            }, f"{path.name} cell {i} defines {m.group(2)}: move it into mpclr"


def test_ruff_passes_on_the_notebooks():
    result = subprocess.run([_tool("ruff"), "check", "notebooks"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_notebook_is_a_known_step():
    """A new notebook joins by a Step in mpclr/notebooks/sequence.py (that is what runners and batch use)."""
    assert {p.stem for p in NOTEBOOKS} == set(STEPS), "add each notebook to mpclr.notebooks.sequence"
    numbers = [s.name.split("_", 1)[0] for s in SEQUENCE]  # "02b" runs after "02", before "03"
    assert numbers == sorted(numbers) and len(set(numbers)) == len(numbers)


def test_the_app_pages_are_clean_calls_into_mpclr_app():
    """The app's pages: stored without outputs, kernel python3, no parameters (a page takes none: its form is
    the page), no logic: each code cell calls into mpclr.app."""
    assert {p.stem for p in APP_NOTEBOOKS} == {"study", "workshop"}
    for path in APP_NOTEBOOKS:
        nb = nbformat.read(path, as_version=4)
        assert nb.metadata.get("kernelspec", {}).get("name") == "python3", f"app/{path.name}: kernel python3"
        assert "widgets" not in nb.metadata, f"app/{path.name} carries saved widget state: run nbstripout"
        code = [c for c in nb.cells if c.cell_type == "code"]
        assert code, f"app/{path.name} has no code cell"
        for i, cell in enumerate(code):
            assert cell.outputs == [] and cell.execution_count is None, f"app/{path.name} cell {i}: run nbstripout"
            assert "parameters" not in cell.metadata.get("tags", []), f"app/{path.name}: a page takes no parameters"
            assert not re.search(r"^(def|class) ", cell.source, re.M), f"app/{path.name} cell {i}: logic to mpclr.app"
            assert "from mpclr.app import" in cell.source, f"app/{path.name} cell {i}: a page only calls mpclr.app"
