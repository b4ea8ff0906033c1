"""lab/yaml_input.py: any bytes or text gives a mapping or the lab's one-line InputError."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from lab.yaml_input import (
    MAX_BYTES,
    MAX_DEPTH,
    MAX_NODES,
    InputError,
    load_bytes,
    load_text,
    one_line,
    read,
)


def _refused_or_mapping(call: object, *args: object) -> None:
    try:
        data = call(*args, "in.yaml")  # type: ignore[operator]
    except InputError as exc:
        text = str(exc)
        assert text.startswith("in.yaml: ")
        assert len(text.splitlines()) == 1 and text.isprintable(), repr(text)
    else:
        assert isinstance(data, dict)


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=400))
def test_any_bytes(raw: bytes) -> None:
    _refused_or_mapping(load_bytes, raw)


_PIECES = [*"ab1:-?,[]{}&*!|>'\"#%@`~. \n\t\r\x00\x07\x85\u2028\ufeff\u00e9", "!!str",
           "!!python/", "<<", "---", "...", "&a", "*a", ".nan", "\n  ", "\n- "]
YAMLISH = st.lists(st.sampled_from(_PIECES), max_size=60).map("".join)


@settings(max_examples=600, deadline=None)
@given(YAMLISH)
def test_any_yamlish_text(text: str) -> None:
    _refused_or_mapping(load_text, text)


values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=6),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
        st.text(max_size=4) | st.integers(), inner, max_size=3),
    max_leaves=40)


@settings(max_examples=300, deadline=None)
@given(values, st.booleans())
def test_any_dumped_structure(value: object, flow: bool) -> None:
    text = yaml.safe_dump({"top": value}, default_flow_style=flow)
    _refused_or_mapping(load_text, text)


def _nested(depth: int) -> str:
    """A mapping whose value is a list nested so that the file has ``depth`` levels."""
    return "a: " + "[" * (depth - 1) + "]" * (depth - 1) + "\n"


def test_nesting_cap_is_exact() -> None:
    assert load_text(_nested(MAX_DEPTH), "n.yaml")
    with pytest.raises(InputError, match=rf"^n\.yaml: line 1: nested deeper than {MAX_DEPTH}"):
        load_text(_nested(MAX_DEPTH + 1), "n.yaml")


def test_value_cap_is_exact() -> None:
    # the mapping, its key, the list: 3 values; the rest are the list's items
    assert load_text("a: [" + "1," * (MAX_NODES - 4) + "1]\n", "v.yaml")
    with pytest.raises(InputError, match=rf"^v\.yaml: line 1: more than {MAX_NODES} values"):
        load_text("a: [" + "1," * (MAX_NODES - 3) + "1]\n", "v.yaml")


def test_deep_nesting_is_no_recursion_error() -> None:
    with pytest.raises(InputError, match="nested deeper"):
        load_text("summary: " + "[" * 20000 + "]" * 20000, "d.yaml")
    with pytest.raises(InputError, match="nested deeper"):
        load_text("summary: " + "{a: " * 20000 + "}" * 20000, "d.yaml")


def test_size_cap_is_exact_and_checked_before_reading(tmp_path: Path) -> None:
    at_cap = tmp_path / "at.yaml"
    at_cap.write_bytes(b"summary: " + b"x" * (MAX_BYTES - 10) + b"\n")
    assert at_cap.stat().st_size == MAX_BYTES
    assert read(at_cap)["summary"].startswith("xxx")
    sparse = tmp_path / "sparse.yaml"
    with sparse.open("wb") as handle:  # 40 MB that was never written: refused by its size
        handle.truncate(40 * MAX_BYTES)
    with pytest.raises(InputError, match=r"41943040 bytes, over the 1 MiB limit"):
        read(sparse)


@pytest.mark.parametrize(("text", "words"), [
    ("summary: x\n? {a: 1}\n: 2\n", "line 2: a mapping used as a key"),
    ("? [a]\n: 1\n", "line 1: a list used as a key"),
    ("a: 1\nb: 2\na: 3\n", "line 3: not valid YAML: duplicate key 'a'"),
    ("a: &x 1\nb: *x\n", "line 1: anchors (&x) are not allowed"),
    ("a: !!python/name:os.system x\n", "the tag !!python/name:os.system is not allowed"),
    ("a: 1\nb: x\x00y\n", "line 2: a NUL byte"),
    ("", "has no content"),
    ("[1, 2]\n", "(top): must be a mapping of fields, not a list"),
])
def test_refusals_name_the_place(text: str, words: str) -> None:
    with pytest.raises(InputError) as info:
        load_text(text, "x.yaml")
    assert str(info.value).startswith("x.yaml: ") and words in str(info.value)


def test_non_utf8_names_the_line() -> None:
    with pytest.raises(InputError, match=r"^u\.yaml: line 3: not UTF-8 \(byte 0xff\)$"):
        load_bytes(b"a: 1\nb: 2\nc: \xff\n", "u.yaml")
    assert load_bytes(b"\xef\xbb\xbfa: 1\n", "bom.yaml") == {"a": 1}


def test_one_line_escapes_line_breaks_and_controls() -> None:
    assert one_line("a\nb\u2028c\x00") == "a\\nb\\u2028c\\x00"
    assert one_line("x" * 500).endswith("...") and len(one_line("x" * 500)) == 303
