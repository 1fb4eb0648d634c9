"""`python -m orbit.sandbox.telegram`: the emulator alone (see run.py)."""

from orbit.sandbox.telegram.run import main

main()
