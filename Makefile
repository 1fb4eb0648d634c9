# Shortcuts; the README's two commands work without make.
.PHONY: run test lint migrate status stop bench

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

# Benchmarks (BENCHMARKS.md says what each measures and what it printed).
bench:
	.venv/bin/python -m bench.bench_crowd --users 50,200 --write
	.venv/bin/python -m bench.bench_crowd --users 200 --fault kill-bot --write
	.venv/bin/python -m bench.bench_crowd --users 200 --fault restart-redis --write
