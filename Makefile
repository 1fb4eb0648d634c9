# Shortcuts; the README's two commands work without make.
.PHONY: run test lint migrate status stop bench fuzz

run:
	./scripts/run.sh

test:
	./scripts/test.sh

# The fuzz tests with many more examples than the normal run; prints how many ran.
fuzz:
	FUZZ_EXAMPLES=$${FUZZ_EXAMPLES:-1000} .venv/bin/python -m pytest -q -p no:cacheprovider -m fuzz \
		--hypothesis-show-statistics tests/fuzz

lint:
	.venv/bin/ruff check orbit tests migrations bench

migrate:
	.venv/bin/orbit migrate

status:
	.venv/bin/orbit status

stop:
	.venv/bin/supervisorctl -c supervisord.conf shutdown

# The fuzz tests, longer than in the normal run; prints how many examples each ran.
fuzz:
	HYPOTHESIS_PROFILE=fuzz-long .venv/bin/python -m pytest -p no:cacheprovider -m fuzz tests/fuzz --hypothesis-show-statistics -q
