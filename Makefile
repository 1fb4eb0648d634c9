# Shortcuts; the README's two commands work without make.
.PHONY: run test lint migrate status stop bench fuzz

run:
	./scripts/run.sh

test:
	./scripts/test.sh

# The fuzz tests with many more examples than the normal run; prints how many ran.
fuzz:
	FUZZ_EXAMPLES=$${FUZZ_EXAMPLES:-1000} .venv/bin/python -m pytest -q -p no:cacheprovider -m fuzz \
		--hypothesis-show-statistics tests

lint:
	.venv/bin/ruff check orbit tests migrations bench

migrate:
	.venv/bin/orbit migrate

status:
	.venv/bin/orbit status

stop:
	.venv/bin/supervisorctl -c supervisord.conf shutdown

# The tests marked `fuzz` with many more examples (HYPOTHESIS_PROFILE=fuzz; FUZZ_EXAMPLES per
# test, FUZZ_SCALE times the normal run where a test sets its own); prints each test's count.
fuzz:
	HYPOTHESIS_PROFILE=fuzz FUZZ_EXAMPLES=$${FUZZ_EXAMPLES:-1000} .venv/bin/python -m pytest -q \
		-p no:cacheprovider -m fuzz -o timeout=0 -rP --hypothesis-show-statistics tests

# Benchmarks (BENCHMARKS.md says what each measures and what it printed).
bench:
	.venv/bin/python -m bench.bench_crowd --users 50,200 --write
	.venv/bin/python -m bench.bench_crowd --users 200 --fault kill-bot --write
	.venv/bin/python -m bench.bench_crowd --users 200 --fault restart-redis --write
