"""The Makefile is the README's contract (one command sets up, one runs the tests), so its targets are checked.

A name listed in .PHONY without a rule is not an error to make: it is silently "up to date". That is how
`eval-data` once vanished from the Makefile while `make test` still named it, and CI, on a clean checkout,
ran the quality gate without its documents.
"""

from __future__ import annotations

import re
from pathlib import Path

MAKEFILE = Path(__file__).resolve().parents[2] / "Makefile"
RULE = re.compile(r"^([A-Za-z0-9_.\-/$()]+)\s*:(?!=)\s*(.*)$")


def _rules() -> dict[str, list[str]]:
    rules: dict[str, list[str]] = {}
    for line in MAKEFILE.read_text().splitlines():
        match = RULE.match(line)
        if match and not line.startswith("\t"):
            # "|" separates order-only prerequisites from the rest; both kinds must be rules.
            rules[match.group(1)] = [name for name in match.group(2).split() if name != "|"]
    return rules


def test_every_phony_target_has_a_rule():
    rules = _rules()
    phony = rules.pop(".PHONY")
    assert [name for name in phony if name not in rules] == []


def test_every_prerequisite_of_a_phony_target_is_a_rule():
    rules = _rules()
    phony = rules.pop(".PHONY")
    missing = {
        (target, needed)
        for target in phony
        for needed in rules.get(target, [])
        if needed not in rules and not needed.startswith("$(")
    }
    assert missing == set()


def test_the_test_target_builds_the_evaluation_sets_the_quality_gate_reads():
    rules = _rules()
    assert "eval-data" in rules["test"]
    recipe = MAKEFILE.read_text().split("\neval-data:", 1)[1].split("\n\n", 1)[0]
    for script in ("data/eval/fetch.sh", "data/eval/faq/build.py", "data/eval/pdf/fetch.sh"):
        assert script in recipe
