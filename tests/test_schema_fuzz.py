"""Issue 10 item 5: schemathesis over the whole API schema, a bounded number of examples per
operation: no 5xx, and every documented response matches the schema."""

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from billing_site.wsgi import application

schema = schemathesis.openapi.from_wsgi("/api/v1/schema/?format=json", application)

EXAMPLES_PER_OPERATION = 15


@pytest.fixture
def admin_key(db):
    """Requests go straight through the WSGI app inside the test transaction: like Django's test
    client, keep the request signals from closing that connection."""
    from django.core.signals import request_finished, request_started
    from django.db import close_old_connections

    from customers.services import api_key_create

    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    _, raw = api_key_create(name="fuzz", scopes=["admin"])
    yield raw
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@schema.parametrize()
@settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, derandomize=True, database=None,
          suppress_health_check=list(HealthCheck), phases=[Phase.explicit, Phase.generate])
def test_api_answers_every_generated_request_without_server_errors(case, admin_key):
    response = case.call(headers={"Authorization": f"Bearer {admin_key}"})
    case.validate_response(response, checks=[not_a_server_error, response_schema_conformance])
