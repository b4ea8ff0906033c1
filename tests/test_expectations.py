"""run --expect FILE: known failures and skips for a sender the catalogue does not know."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lab.expectations import ExpectationsError, load
from lab.scenario import load_catalogue, select

IDS = load_catalogue()
DOC_EXAMPLE = Path(__file__).resolve().parents[1] / "docs" / "examples" / "swaks-expect.yaml"


def test_documented_example_loads_and_applies() -> None:
    expect = load(DOC_EXAMPLE, IDS)
    wrong = "certificates/swap-certificate-wrong-name-enforce"
    assert "host name" in expect.known_failures[wrong]
    assert set(expect.skip) == {"mx/spoof-mx-enforce", "certificates/sni-names-the-mx"}
    (applied,) = expect.apply(select([wrong]), ["command", "mine"])
    assert applied.known_failures["command"] == applied.known_failures["mine"] \
        == expect.known_failures[wrong]
    (untouched,) = expect.apply(select(["starttls/strip-starttls-enforce"]), ["command"])
    assert "command" not in untouched.known_failures


@pytest.mark.parametrize("text, message", [
    ("known_failures:\n  nope/none: x\n", "known_failures.nope/none: unknown scenario id"),
    ("skip:\n  starttls/strip-starttls-enforce: ''\n",
     "skip.starttls/strip-starttls-enforce: expected a one-line reason"),
    ("skips: {}\n", "unknown field 'skips'"),
    ("- a\n", "expected a mapping"),
    ("skip: [a]\n", "skip: expected a mapping"),
    ("known_failures: {certificates/sni-names-the-mx: a}\n", "no attack phase"),
    ("skip: {a: [\n", "not valid YAML"),
    ("known_failures: {starttls/strip-starttls-enforce: a}\n"
     "skip: {starttls/strip-starttls-enforce: b}\n", "both a known failure and a skip"),
])
def test_bad_files_name_file_and_field(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "e.yaml"
    path.write_text(text)
    with pytest.raises(ExpectationsError, match="^" + str(path) + ": ") as info:
        load(path, IDS)
    assert message in str(info.value) and "\n" not in str(info.value)


@given(st.binary(max_size=200))
def test_any_bytes_load_or_fail_cleanly(raw: bytes) -> None:
    import tempfile

    with tempfile.NamedTemporaryFile(suffix=".yaml") as f:
        f.write(raw)
        f.flush()
        try:
            load(Path(f.name), IDS)
        except ExpectationsError as exc:
            assert str(exc).startswith(f.name + ": ") and "\n" not in str(exc)
