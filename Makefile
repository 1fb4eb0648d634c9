# Shortcuts; the README's two commands work without make.
.PHONY: run test lint migrate status stop bench fuzz

run:
	./scripts/run.sh

test:
	./scripts/test.sh

lint:
	.venv/bin/ruff check orbit tests migrations bench

migrate:
	.venv/bin/orbit migrate

status:
	.venv/bin/orbit status

stop:
	.venv/bin/supervisorctl -c supervisord.conf shutdown

# The fuzz tests with many more examples (HYPOTHESIS_PROFILE=fuzz; FUZZ_SCALE=25 times the
# normal run's, override with FUZZ_SCALE=N); -rP prints how many examples each test ran.
fuzz:
	HYPOTHESIS_PROFILE=fuzz .venv/bin/python -m pytest -q -p no:cacheprovider -m fuzz -rP tests/fuzz
