"""Shards: a stable slice per shard, one-line errors for bad specs, and shards merged into
the same verdicts as one unsharded run."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lab import shard
from lab.cli import main

SELECTION = ["baseline/enforce-valid-tls", "starttls/strip-starttls-enforce",
             "starttls/reject-starttls-454-testing",
             "certificates/swap-certificate-expired-enforce", "mx"]


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "lab.cli", *args], capture_output=True,
                          text=True, timeout=300, check=False)


@given(st.text(max_size=12))
def test_shard_spec_parser_accepts_only_k_of_n(text: str) -> None:
    try:
        k, n = shard.parse(text)
    except shard.ShardError as exc:
        assert str(exc).startswith("--shard ")
        assert str(exc).isprintable()  # one line, whatever was typed
    else:
        assert 1 <= k <= n
        assert re.fullmatch(r"[0-9]+/[0-9]+", text.strip())
        assert (k, n) == tuple(int(x) for x in text.strip().split("/"))


@given(st.integers(1, 50), st.integers(1, 50))
def test_shard_spec_round_trip(k: int, n: int) -> None:
    if k <= n:
        assert shard.parse(f"{k}/{n}") == (k, n)
    else:
        with pytest.raises(shard.ShardError):
            shard.parse(f"{k}/{n}")


@given(st.lists(st.tuples(st.sampled_from(["reference", "opportunistic", "postfix"]),
                          st.text("abc/-", min_size=1, max_size=8)), unique=True,
                max_size=40),
       st.integers(1, 7), st.randoms())
def test_shards_partition_the_work_whatever_the_order(pairs: list[tuple[str, str]], n: int,
                                                       rnd: object) -> None:
    work = [(x, s, None) for x, s in pairs]
    slices = [shard.slice_of(work, k, n) for k in range(1, n + 1)]
    got = [(x, s) for part in slices for x, s, _ in part]
    assert sorted(got) == sorted(pairs)  # every pair once
    sizes = [len(part) for part in slices]
    assert max(sizes) - min(sizes) <= 1
    shuffled = list(work)
    rnd.shuffle(shuffled)  # type: ignore[attr-defined]
    assert [shard.slice_of(shuffled, k, n) for k in range(1, n + 1)] == slices


def test_slice_does_not_depend_on_the_hash_seed() -> None:
    code = ("from lab import shard; print(shard.slice_of([(x, s, 0) for x in ('a', 'b') "
            "for s in 'cdefgh'], 1, 3))")
    outs = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           check=True, env={**os.environ, "PYTHONHASHSEED": seed}).stdout
            for seed in ("0", "1", "12345")}
    assert len(outs) == 1


@pytest.mark.parametrize("spec", ["0/2", "3/2", "1/0", "a/b", "1-2", "1/2/3", "", "-1/2"])
def test_bad_shard_spec_is_one_line_exit_2(spec: str, tmp_path: Path) -> None:
    out = cli("run", "baseline/enforce-valid-tls", f"--shard={spec}", "--json",
              str(tmp_path / "r.json"))
    assert out.returncode == 2
    assert out.stderr.strip().count("\n") == 0 and "Traceback" not in out.stderr
    assert f"--shard {spec or repr(spec)}:" in out.stderr
    assert not (tmp_path / "r.json").exists()


def _runs(doc_path: Path) -> dict[tuple[str, str, str], str]:
    doc = json.loads(doc_path.read_text())
    return {(r["scenario"], r["phase"], r["sender"]): r["verdict"] for r in doc["runs"]}


@pytest.mark.integration
def test_shards_merged_equal_one_run(tmp_path: Path) -> None:
    whole, one, two, merged = (tmp_path / f"{n}.json" for n in ("whole", "s1", "s2", "merged"))
    assert main(["run", *SELECTION, "-q", "--json", str(whole)]) == 0
    assert main(["run", *SELECTION, "-q", "--shard", "1/2", "--json", str(one)]) == 0
    assert main(["run", *SELECTION, "-q", "--shard", "2/2", "--json", str(two)]) == 0
    first, second = _runs(one), _runs(two)
    assert first and second and not set(first) & set(second)
    junit, html = tmp_path / "merged.xml", tmp_path / "merged.html"
    assert main(["merge", str(one), str(two), "--json", str(merged), "--junit", str(junit),
                 "--html", str(html)]) == 0
    assert _runs(merged) == _runs(whole)
    doc = json.loads(merged.read_text())
    assert [s["index"] for s in doc["merged_from"]] == [1, 2]
    assert set(doc["scenarios"]) == set(json.loads(whole.read_text())["scenarios"])
    assert junit.read_text().count("<testcase ") == len(_runs(whole))
    assert html.read_text().count("<svg class='seq'") == len(_runs(whole))
    # a missing shard is reported, and fails the merge
    out = cli("merge", str(one))
    assert out.returncode == 1 and "shards 2 of 2 are missing" in out.stderr
    # the same phase twice is refused, naming both files; nothing is written
    again = cli("merge", str(one), str(one), "--json", str(tmp_path / "x.json"))
    assert again.returncode == 2 and again.stderr.count("\n") == 1
    assert f"is also in {one}" in again.stderr and not (tmp_path / "x.json").exists()


@pytest.mark.parametrize(("content", "words"), [
    (None, "cannot read"), ("{", "not JSON"), ('{"tool": "mtasts-lab"}', "required property"),
])
def test_bad_merge_input_is_one_line_exit_2(content: str | None, words: str,
                                            tmp_path: Path) -> None:
    path = tmp_path / "shard.json"
    if content is not None:
        path.write_text(content)
    out = cli("merge", str(path), "--json", str(tmp_path / "out.json"))
    assert out.returncode == 2 and out.stderr.count("\n") == 1, out.stderr
    assert str(path) in out.stderr and words in out.stderr
    assert not (tmp_path / "out.json").exists()
