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
