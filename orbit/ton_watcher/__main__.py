"""`python -m orbit.ton_watcher`: matches incoming TON transactions to pending payments."""

from __future__ import annotations

from orbit import runtime
from orbit.ton_watcher.process import WORKER


def main() -> None:
    runtime.main(WORKER)


if __name__ == "__main__":
    main()
