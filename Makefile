# Ledgerline: `make demo` sets up and starts everything; `make test` runs the whole suite.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
MANAGE := $(BIN)/python manage.py
HOST ?= 127.0.0.1
PORT ?= 8000
RUN := .run
# The local Stripe sandbox (payments/sandbox/): `make demo` starts it and points the app at it.
# To use real Stripe test mode instead, set STRIPE_API_KEY and STRIPE_WEBHOOK_SECRET and run with
# STRIPE_API_BASE= (empty) — see README "Payments".
# Only the demo's processes get these (not `make test`, whose suite starts its own sandbox).
STRIPE_SANDBOX_PORT ?= 12111
STRIPE_API_BASE ?= http://127.0.0.1:$(STRIPE_SANDBOX_PORT)
STRIPE_WEBHOOK_SECRET ?= whsec_ledgerline_demo_sandbox
# The demo's e-mails (invoices, dunning) go to files under var/mail instead of flooding the terminal.
DEMO_ENV := STRIPE_API_BASE=$(STRIPE_API_BASE) STRIPE_WEBHOOK_SECRET=$(STRIPE_WEBHOOK_SECRET) \
	EMAIL_BACKEND=$${EMAIL_BACKEND:-django.core.mail.backends.filebased.EmailBackend}

.PHONY: demo test venv system-deps services migrate seed start stop stop-app sandbox serve worker beat bench clean

# WeasyPrint needs Pango (present on this machine kind) and, for names in Chinese, Japanese or Korean,
# a CJK font (the bundled face covers Latin, Greek and Cyrillic); the PDF checks use poppler's pdftoppm; the
# back-office browser tests drive Debian's headless Chromium through its chromedriver.
system-deps:
	@command -v pdftoppm >/dev/null 2>&1 || { \
		if [ "$$(id -u)" = 0 ]; then apt-get update -qq >/dev/null && apt-get install -y -qq poppler-utils >/dev/null; \
		else echo "ERROR: pdftoppm is missing: sudo apt-get install poppler-utils"; exit 1; fi; }
	@fc-list :lang=ja 2>/dev/null | grep -q . || { \
		if [ "$$(id -u)" = 0 ]; then apt-get update -qq >/dev/null && apt-get install -y -qq fonts-noto-cjk >/dev/null; \
		else echo "ERROR: documents need a CJK font for such names: sudo apt-get install fonts-noto-cjk"; exit 1; fi; }
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

# Starts the Stripe sandbox in the background (once; its state survives restarts in $(RUN)/).
sandbox: venv
	@mkdir -p $(RUN)
	@if [ -z "$(STRIPE_API_BASE)" ]; then echo "STRIPE_API_BASE is empty: using real Stripe, no sandbox"; \
	elif [ -f $(RUN)/sandbox.pid ] && kill -0 $$(cat $(RUN)/sandbox.pid) 2>/dev/null; then :; \
	else nohup $(MANAGE) stripe_sandbox --port $(STRIPE_SANDBOX_PORT) --state-file $(RUN)/stripe-sandbox.pickle \
		--webhook-url http://$(HOST):$(PORT)/api/v1/stripe/webhook/ --webhook-secret $(STRIPE_WEBHOOK_SECRET) \
		>$(RUN)/sandbox.log 2>&1 & echo $$! > $(RUN)/sandbox.pid; \
		for i in $$(seq 1 50); do grep -q listening $(RUN)/sandbox.log 2>/dev/null && break; sleep 0.2; done; \
		grep -q listening $(RUN)/sandbox.log || (echo "ERROR: the Stripe sandbox did not start; see $(RUN)/sandbox.log" && exit 1); fi

seed: migrate sandbox
	@$(DEMO_ENV) $(MANAGE) seed_demo

# Starts the web app (granian: 2 worker processes of 2 threads), a Celery worker and beat in the background,
# then prints how to log in.
demo: seed
	@$(MAKE) --no-print-directory stop-app >/dev/null
	@mkdir -p $(RUN)
	@$(DEMO_ENV) nohup $(BIN)/granian --interface wsgi billing_site.wsgi:application --host $(HOST) --port $(PORT) \
		--workers 2 --blocking-threads 2 --no-ws --respawn-failed-workers --workers-kill-timeout 30 --access-log \
		>$(RUN)/web.log 2>&1 & echo $$! > $(RUN)/web.pid
	@$(DEMO_ENV) nohup $(BIN)/celery -A billing_site worker -l INFO --concurrency 2 >$(RUN)/worker.log 2>&1 & echo $$! > $(RUN)/worker.pid
	@$(DEMO_ENV) nohup $(BIN)/celery -A billing_site beat -l INFO >$(RUN)/beat.log 2>&1 & echo $$! > $(RUN)/beat.pid
	@for i in $$(seq 1 50); do curl -fs -o /dev/null http://$(HOST):$(PORT)/healthz && break; sleep 0.2; done
	@curl -fs -o /dev/null http://$(HOST):$(PORT)/healthz || (echo "ERROR: the web app did not start; see $(RUN)/web.log" && exit 1)
	@$(MANAGE) demo_banner --url http://$(HOST):$(PORT)

stop: stop-app
	@if [ -f $(RUN)/sandbox.pid ]; then kill $$(cat $(RUN)/sandbox.pid) 2>/dev/null || true; rm -f $(RUN)/sandbox.pid; fi

stop-app:
	@for p in web worker beat; do \
		if [ -f $(RUN)/$$p.pid ]; then kill $$(cat $(RUN)/$$p.pid) 2>/dev/null || true; rm -f $(RUN)/$$p.pid; fi; \
	done

# Foreground web server, for development.
serve: migrate sandbox
	@$(DEMO_ENV) $(MANAGE) runserver $(HOST):$(PORT)

test: venv system-deps
	@$(BIN)/python bin/check_services.py
	@$(BIN)/ruff check .
	@$(BIN)/python -m pytest --create-db $(PYTEST_ARGS)

clean: stop
	rm -rf $(VENV) var $(RUN)
