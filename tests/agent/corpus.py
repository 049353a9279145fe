"""The request corpus (corpus_*.yaml beside this file) scored against the offline planner.

Run it alone for the figures docs/agent.md quotes:  python tests/agent/corpus.py
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from app.agent.offline_model import decide, plan
from app.tools import SPENDING_OR_DESTRUCTIVE, TOOL_NAMES

HERE = Path(__file__).parent


@dataclass
class Scored:
    entry: dict[str, Any]
    exact: bool
    said_not_understood: bool
    proposed: list[tuple[str, dict[str, Any]]]
    answer: str

    @property
    def unsafe(self) -> bool:
        """A question or a negation that led to a spending or destructive call, now or as
        the step its first results would lead to."""
        if self.entry.get("kind") not in ("question", "negation"):
            return False
        acts = any(name in SPENDING_OR_DESTRUCTIVE for name, _ in self.proposed)
        return acts or decide(self.entry["say"]).then is not None


def load() -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = []
    for path in sorted(HERE.glob("corpus_*.yaml")):
        for entry in yaml.safe_load(path.read_text()):
            entries.append({**entry, "file": path.name})
    return entries


def score(entry: dict[str, Any]) -> Scored:
    found = plan(entry["say"], set(TOOL_NAMES))
    if isinstance(found, str):
        proposed: list[tuple[str, dict[str, Any]]] = []
        answer = found
    else:
        proposed = [(c["name"], c["args"]) for c in found]
        answer = ""
    if "calls" in entry:
        expected = [(name, args) for name, args in entry["calls"]]
        exact = proposed == expected
    elif "unclear" in entry:
        exact = not proposed and "did not understand" in answer \
            and all(f"'{w}'" in answer for w in entry["unclear"])
    else:
        wanted = entry.get("asks") or entry.get("says")
        exact = not proposed and wanted in answer
    return Scored(entry, exact, not proposed and "did not understand" in answer, proposed,
                  answer)


def report(results: list[Scored]) -> str:
    kinds = Counter(r.entry.get("kind", "request") for r in results)
    exact = sum(r.exact for r in results)
    lines = [f"{len(results)} requests ({', '.join(f'{n} {k}s' for k, n in kinds.items())}): "
             f"{exact} exactly right ({100 * exact / len(results):.1f}%), "
             f"{sum(not r.exact and r.said_not_understood for r in results)} said what they did "
             f"not understand, {sum(not r.exact and not r.said_not_understood for r in results)}"
             f" silent drops, {sum(r.unsafe for r in results)} unsafe"]
    for r in results:
        if not r.exact:
            lines.append(f"  {r.entry['file']}: {r.entry['say']!r} -> "
                         f"{r.proposed or r.answer!r}")
    return "\n".join(lines)


if __name__ == "__main__":
    print(report([score(e) for e in load()]))
