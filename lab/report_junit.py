"""JUnit XML that CI test reporters (Jenkins, GitLab, GitHub actions) show well.

- classnames hold no dots (Jenkins-style renderers split them into packages):
  ``mtasts-lab/<sender>/<theme>``;
- a test name says scenario, phase and sender: ``starttls/strip-starttls-enforce [phase1]
  with reference``;
- a failure or error always has a message (the verdict's why) and the details in its body;
- ``system-out`` holds the narrated transcript (what ``--show`` prints).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence

from lab.narrate import narrate
from lab.oracle import ERROR, FAIL, INCONCLUSIVE, KNOWN_FAILURE, UNEXPECTED_PASS
from lab.run_record import Record

_FAILED = (FAIL, UNEXPECTED_PASS)
_ERRORED = (ERROR, INCONCLUSIVE)


def _nodots(text: str) -> str:
    return text.replace(".", "_")


def classname(r: Record) -> str:
    theme = r.scenario.rsplit("/", 1)[0] if "/" in r.scenario else "scenarios"
    return _nodots(f"mtasts-lab/{r.sender}/{theme}")


def test_name(r: Record) -> str:
    return f"{r.scenario} [{r.phase}] with {r.sender}"


def message(r: Record) -> str:
    """One line: never empty."""
    head = f"{r.verdict}: expected {' or '.join(r.expected)}, observed {r.observed or 'nothing'}"
    return f"{head}: {r.why}" if r.why else head


def _details(r: Record) -> str:
    lines = [message(r), f"level: {r.level}", f"sender's reason: {r.reason or '-'}",
             f"refs: {', '.join(r.refs)}"]
    if r.attacks:
        lines.append(f"attacks: {', '.join(r.attacks)} (fired: {r.attack_fired})")
    return "\n".join(lines)


def _fails(r: Record) -> bool:
    return r.verdict in _FAILED and not r.advisory


def _skips(r: Record) -> bool:
    """known-failure, skipped, and any other verdict that neither passes nor fails the run
    (e.g. not-exercised); an advisory miss counts as passed (its why is in system-out)."""
    return (r.verdict != "pass" and not _fails(r) and r.verdict not in _ERRORED
            and not (r.verdict == FAIL and r.advisory))


def junit(records: Sequence[Record]) -> ET.Element:
    """One test suite per sender, one test case per scenario phase."""
    root = ET.Element("testsuites", name="mtasts-lab")
    by_sender: dict[str, list[Record]] = {}
    for r in records:
        by_sender.setdefault(r.sender, []).append(r)
    for sender, recs in by_sender.items():
        suite = ET.SubElement(root, "testsuite", name=f"mtasts-lab.{sender}",
                              tests=str(len(recs)),
                              failures=str(sum(_fails(r) for r in recs)),
                              errors=str(sum(r.verdict in _ERRORED for r in recs)),
                              skipped=str(sum(_skips(r) for r in recs)),
                              time=f"{sum(r.duration_s for r in recs):.3f}")
        props = ET.SubElement(suite, "properties")
        ET.SubElement(props, "property", name="backend", value=recs[0].backend)
        ET.SubElement(props, "property", name="sender", value=sender)
        for r in recs:
            case = ET.SubElement(suite, "testcase", classname=classname(r), name=test_name(r),
                                 time=f"{r.duration_s:.3f}")
            if _fails(r):
                ET.SubElement(case, "failure", message=message(r), type=r.verdict).text = \
                    _details(r)
            elif r.verdict in _ERRORED:
                ET.SubElement(case, "error", message=message(r), type=r.verdict).text = \
                    _details(r)
            elif r.verdict == KNOWN_FAILURE:
                ET.SubElement(case, "skipped", message=f"known failure of {r.sender}: "
                              + message(r))
            elif _skips(r):
                ET.SubElement(case, "skipped", message=message(r))
            ET.SubElement(case, "system-out").text = narrate(r) + "\n"
    return root
