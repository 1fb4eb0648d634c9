"""The `orbit` command line as an operator runs it: a real process in the checkout."""

from __future__ import annotations

import asyncio
import os
import sys

from tests.support.processes import ROOT


async def orbit(env: dict[str, str], *args: str, timeout: float = 60) -> tuple[int, str, str]:
    """Run `orbit ARGS...` with PATH and `env` only; its exit code, stdout and stderr."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", "from orbit.cli.main import main; main()", *args,
        cwd=str(ROOT),
        env={"PATH": os.environ.get("PATH", ""), **env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), timeout)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()
