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

# The tests marked `fuzz` with the "fuzz" hypothesis profile (FUZZ_EXAMPLES examples each,
# default 3000; no time limit per test) and hypothesis' count of examples per test.
fuzz:
	HYPOTHESIS_PROFILE=fuzz .venv/bin/python -m pytest -p no:cacheprovider -m fuzz -o timeout=0 \
		--hypothesis-show-statistics tests
