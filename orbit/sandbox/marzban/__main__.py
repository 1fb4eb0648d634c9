"""`python -m orbit.sandbox.marzban`: panels alone (see run.py)."""

from orbit.sandbox.marzban.run import main

main()
