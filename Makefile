# Ledgerline: `make demo` sets up and starts everything; `make test` runs the whole suite.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
MANAGE := $(BIN)/python manage.py
HOST ?= 127.0.0.1
PORT ?= 8000
RUN := .run

.PHONY: demo test venv system-deps services migrate seed start stop serve worker beat bench clean

# WeasyPrint needs Pango (present on this machine kind); the PDF checks use poppler's pdftoppm; the
# back-office browser tests drive Debian's headless Chromium through its chromedriver.
system-deps:
	@command -v pdftoppm >/dev/null 2>&1 || { \
		if [ "$$(id -u)" = 0 ]; then apt-get update -qq >/dev/null && apt-get install -y -qq poppler-utils >/dev/null; \
		else echo "ERROR: pdftoppm is missing: sudo apt-get install poppler-utils"; exit 1; fi; }
	@{ command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; } || { \
		if [ "$$(id -u)" = 0 ]; then apt-get update -qq >/dev/null && apt-get install -y -qq chromium chromium-driver >/dev/null; \
		else echo "ERROR: the browser tests need Chromium: sudo apt-get install chromium chromium-driver"; exit 1; fi; }

$(BIN)/.installed: requirements.txt
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	@$(BIN)/pip install -q --upgrade pip
	@$(BIN)/pip install -q -r requirements.txt
	@touch $@

venv: $(BIN)/.installed

services: venv system-deps
	@$(BIN)/python bin/check_services.py --create-db

migrate: services
	@$(MANAGE) migrate --noinput -v0
	@$(MANAGE) collectstatic --noinput -v0

seed: migrate
	@$(MANAGE) seed_demo

# Starts the web app (gunicorn), a Celery worker and beat in the background, then prints how to log in.
demo: seed
	@$(MAKE) --no-print-directory stop >/dev/null
	@mkdir -p $(RUN)
	@$(BIN)/gunicorn billing_site.wsgi:application --bind $(HOST):$(PORT) --workers 2 --daemon \
		--pid $(RUN)/web.pid --access-logfile $(RUN)/web-access.log --error-logfile $(RUN)/web.log
	@nohup $(BIN)/celery -A billing_site worker -l INFO --concurrency 2 >$(RUN)/worker.log 2>&1 & echo $$! > $(RUN)/worker.pid
	@nohup $(BIN)/celery -A billing_site beat -l INFO >$(RUN)/beat.log 2>&1 & echo $$! > $(RUN)/beat.pid
	@for i in $$(seq 1 50); do curl -fs -o /dev/null http://$(HOST):$(PORT)/healthz && break; sleep 0.2; done
	@curl -fs -o /dev/null http://$(HOST):$(PORT)/healthz || (echo "ERROR: the web app did not start; see $(RUN)/web.log" && exit 1)
	@$(MANAGE) demo_banner --url http://$(HOST):$(PORT)

stop:
	@for p in web worker beat; do \
		if [ -f $(RUN)/$$p.pid ]; then kill $$(cat $(RUN)/$$p.pid) 2>/dev/null || true; rm -f $(RUN)/$$p.pid; fi; \
	done

# Foreground web server, for development.
serve: migrate
	@$(MANAGE) runserver $(HOST):$(PORT)

test: venv system-deps
	@$(BIN)/python bin/check_services.py
	@$(BIN)/python -m pytest --create-db $(PYTEST_ARGS)

clean: stop
	rm -rf $(VENV) var $(RUN)
