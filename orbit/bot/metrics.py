"""In-process counters exposed at `/metrics` in Prometheus' text format.

Hand-written rather than prometheus_client: a handful of counters, one process,
no registry or multiprocess mode needed.
"""

from __future__ import annotations

from collections import Counter


class Metrics:
    def __init__(self) -> None:
        self._counters: Counter[tuple[str, tuple[tuple[str, str], ...]]] = Counter()

    def inc(self, name: str, amount: int = 1, **labels: str) -> None:
        self._counters[(name, tuple(sorted(labels.items())))] += amount

    def value(self, name: str, **labels: str) -> int:
        return self._counters[(name, tuple(sorted(labels.items())))]

    def render(self) -> str:
        lines = []
        for (name, labels), value in sorted(self._counters.items()):
            label_text = ",".join(f'{k}="{v}"' for k, v in labels)
            lines.append(f"orbit_{name}{{{label_text}}} {value}" if labels else f"orbit_{name} {value}")
        return "\n".join(lines) + "\n"
