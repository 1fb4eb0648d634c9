"""`python -m orbit.balancer`: node scores and health of every Marzban instance."""

from __future__ import annotations

from orbit import runtime
from orbit.balancer.process import WORKER


def main() -> None:
    runtime.main(WORKER)


if __name__ == "__main__":
    main()
