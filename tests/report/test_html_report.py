"""The HTML report teaches, is self-contained, and renders in a real browser (headless
Chromium, Debian package ``chromium``): the verdict never scrolls sideways, every phase has
its sequence diagram, and the attack's effect is marked."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from tests.report.conftest import Outputs

pytestmark = pytest.mark.integration

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--hide-scrollbars"]


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


def test_page_is_self_contained_and_teaches(themes_run: Outputs) -> None:
    page = themes_run.html.read_text()
    parser = _Tags()
    parser.feed(page)
    tags = parser.tags
    assert not [t for t, _ in tags if t in ("script", "link", "img", "iframe", "object")]
    assert not [a for _, a in tags if a.get("src")]
    assert not re.search(r"url\(|@import|@font-face", page)
    records = len(themes_run.doc()["runs"])
    articles = [a for t, a in tags if t == "article"]
    assert records > 40 and len(articles) == records
    assert sum(t == "svg" for t, _ in tags) == records
    for words in ("What the attacker does", "What a compliant sender does", "Why it matters",
                  "rfc-editor.org/rfc/rfc8461#section-5", "name=\"viewport\"".replace('"', "'")):
        assert words in page, words


def _check_script() -> str:
    return """<script>
window.addEventListener('load', () => {
  const vw = document.documentElement.clientWidth;
  const out = {vw, pageScroll: document.documentElement.scrollWidth, phases: []};
  for (const art of document.querySelectorAll('article.phase')) {
    const v = art.querySelector('.verdict');
    const r = v.getBoundingClientRect();
    const svg = art.querySelector('figure svg.seq');
    const struck = [...art.querySelectorAll('svg .p-struck')].map(e => ({
      text: e.textContent.trim(),
      deco: getComputedStyle(e).textDecorationLine}));
    out.phases.push({
      id: art.id, verdict: v.dataset.verdict, alarm: v.classList.contains('v-alarm'),
      background: getComputedStyle(v).backgroundColor,
      left: r.left, right: r.right, vScroll: v.scrollWidth, vClient: v.clientWidth,
      svgHeight: svg ? svg.getBoundingClientRect().height : 0,
      steps: svg ? Number(svg.dataset.steps) : 0,
      struck, forged: art.querySelectorAll('svg .p-forged').length,
      attackMarks: art.querySelectorAll('svg [data-mark=attack][data-attack]').length});
  }
  out.resources = performance.getEntriesByType('resource').length;
  const pre = document.createElement('pre');
  pre.id = 'lab-check';
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
});
</script>"""


def _chromium(args: list[str], profile: Path) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM
    return subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *args],
                          capture_output=True, text=True, timeout=180, check=False)


def _inspect(page: Path, width: int, profile: Path) -> dict[str, Any]:
    out = _chromium([f"--window-size={width},900", "--virtual-time-budget=10000",
                     "--dump-dom", page.as_uri()], profile)
    m = re.search(r"<pre id=\"lab-check\">(.*?)</pre>", out.stdout, re.S)
    assert m, f"chromium gave no result (exit {out.returncode}): {out.stderr[-500:]}"
    found: dict[str, Any] = json.loads(m.group(1).replace("&quot;", '"')
                                       .replace("&lt;", "<").replace("&gt;", ">")
                                       .replace("&amp;", "&"))
    return found


@pytest.mark.skipif(CHROMIUM is None, reason="headless Chromium is not installed "
                                             "(Debian package: chromium)")
@pytest.mark.parametrize("width", [390, 1280], ids=["phone", "desktop"])
def test_report_in_headless_chromium(themes_run: Outputs, tmp_path: Path, width: int) -> None:
    page = tmp_path / "report.html"
    page.write_text(themes_run.html.read_text().replace("</body>",
                                                        _check_script() + "</body>"))
    found = _inspect(page, width, tmp_path / "profile")
    assert found["resources"] == 0  # nothing fetched: no font, no image, no script
    assert found["pageScroll"] <= found["vw"], "the page scrolls sideways"
    phases = {p["id"]: p for p in found["phases"]}
    assert len(phases) == len(themes_run.doc()["runs"])
    for p in phases.values():
        assert p["left"] >= 0 and p["right"] <= found["vw"] + 0.5, p["id"]
        assert p["vScroll"] <= p["vClient"], f"{p['id']}: the verdict is cut off"
        assert p["steps"] > 3 and p["svgHeight"] > 150, f"{p['id']}: no diagram"
    strip = phases["opportunistic-starttls-strip-starttls-enforce-phase1"]
    assert {"text": "250-STARTTLS", "deco": "line-through"} in strip["struck"]
    assert strip["attackMarks"] >= 2
    assert strip["verdict"] == "known-failure" and strip["alarm"]
    assert strip["background"] == "rgb(185, 28, 28)"  # alarming red, not grey
    swap = phases["opportunistic-certificates-swap-certificate-self-signed-enforce-phase1"]
    assert swap["forged"] >= 1 and swap["alarm"] and swap["background"] == "rgb(185, 28, 28)"
    refused = phases["reference-certificates-swap-certificate-self-signed-enforce-phase1"]
    assert refused["verdict"] == "pass" and refused["forged"] >= 1 and not refused["alarm"]
    baseline = phases["reference-starttls-strip-starttls-enforce-baseline"]
    assert baseline["verdict"] == "pass" and not baseline["struck"]
    shot = tmp_path / "report.png"
    _chromium([f"--window-size={width},1600", f"--screenshot={shot}", page.as_uri()],
              tmp_path / "profile")
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
