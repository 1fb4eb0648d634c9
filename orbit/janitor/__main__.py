"""`python -m orbit.janitor`: expiry, reminders, cleanup and drift repair."""

from __future__ import annotations

from orbit import runtime
from orbit.janitor.process import WORKER


def main() -> None:
    runtime.main(WORKER)


if __name__ == "__main__":
    main()
