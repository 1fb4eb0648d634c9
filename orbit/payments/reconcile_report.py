"""What one reconciliation of one source did: counts, and a line per fix."""

from __future__ import annotations

import msgspec


class Report(msgspec.Struct, kw_only=True):
    source: str  # stars, cryptobot, ton
    checked: int = 0  # outside records looked at
    credited: int = 0  # money that had arrived without our crediting it
    reversed: int = 0  # credits taken back: the money went back outside the bot
    settled: int = 0  # outcomes we did not know (a refund's lost answer) now known
    unresolved: int = 0  # newly reported to the admins (reconcile_issues)
    fixed: list[str] = msgspec.field(default_factory=list)  # one line per fix
    error: str | None = None  # the source could not be read this time
    seconds: float = 0.0

    @property
    def changed(self) -> int:
        return self.credited + self.reversed + self.settled

    def line(self) -> str:
        counts = (
            f"checked {self.checked}, credited {self.credited}, reversed {self.reversed},"
            f" settled {self.settled}, unresolved {self.unresolved}"
        )
        return f"{self.source}: {counts}" + (f"; failed: {self.error}" if self.error else "")
