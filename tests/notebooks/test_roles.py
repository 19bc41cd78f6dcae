"""The roles and message tables the notebooks print cannot drift from the README or from the protocol."""

import re
from pathlib import Path

import numpy as np

from mpclr.notebooks import make_federation, roles

README = Path(__file__).resolve().parents[2] / "README.md"


def _readme_message_types() -> set[str]:
    text = README.read_text()
    section = text[text.index("## Threat model") :]
    section = section[: section.index("\n## ", 4)] if "\n## " in section[4:] else section
    types = set()
    for line in section.splitlines():
        if line.startswith("| `"):
            first_column = line.split("|")[1]
            types |= set(re.findall(r"`([a-z0-9_.]+)`", first_column))
    return types


def test_the_table_lists_exactly_the_readme_messages():
    readme = _readme_message_types()
    ours = {m.type for m in roles.MESSAGES}
    assert readme, "no message table found in README.md's threat-model section"
    assert ours == readme, (
        f"README.md lists {sorted(readme - ours)} that mpclr/notebooks/roles.py does not describe, and "
        f"roles.py describes {sorted(ours - readme)} that README.md does not list: update both together"
    )


def test_every_message_a_study_sends_is_described():
    with make_federation(3, manifest="exploration") as fed:
        fed.generate_rotation_keys([1])
        a = fed.hospitals[0].encrypt(np.arange(4.0))
        b = fed.hospitals[1].encrypt(np.ones(4))
        out = fed.decrypt(fed.server.add(a, b))
        assert np.abs(out - (np.arange(4.0) + 1)).max() < 1e-3
        sent = set(fed.traffic()["by_type"])
        described = roles.describe_traffic(fed.traffic())
    known = {m.type for m in roles.MESSAGES}
    assert sent <= known, f"undescribed message types: {sorted(sent - known)}"
    assert {"decrypt.share", "ct.fetch", "ct.upload", "gkg.share"} <= sent
    assert all("not described" not in r["reveals"] for r in described)


def test_what_a_role_receives_comes_from_the_message_table():
    rows = {r["role"]: r for r in roles.roles_rows(["h-1", "h-2", "h-3"], 2)}
    assert rows["hospital"]["who"] == "h-1, h-2, h-3"
    assert "decrypt.share: c1" in rows["hospital"]["receives"]
    assert "decrypt.share: its partial decryption" in rows["researcher"]["receives"]
    assert "decrypt.share" not in rows["server"]["receives"]  # the server never sees a partial decryption
    assert "ct.upload: a ciphertext" in rows["server"]["receives"]
    assert "2 of 3 key holders" in rows["researcher"]["learns"]


def test_markdown_table_escapes_pipes():
    text = roles.markdown_table([{"a": "x|y", "b": 1}])
    assert text.splitlines() == ["| a | b |", "|---|---|", "| x\\|y | 1 |"]
