"""Fuzz the whole OpenAPI schema with schemathesis: whatever the bodies and parameters, the API
answers with a documented client error, never a 5xx — on the real app, served by uvicorn,
with real Postgres and Redis behind it.

Cases are drawn per operation with Hypothesis inside one test (schemathesis's pytest plugin
does not load under this pytest version)."""

from __future__ import annotations

import schemathesis
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings

EXAMPLES_PER_OPERATION = 25


def test_no_input_makes_a_server_error(live_server, make_user):
    schema = schemathesis.openapi.from_url(f"{live_server}/openapi.json")
    headers = make_user().headers
    operations = [result.ok() for result in schema.get_all_operations()]  # type: ignore[union-attr]
    assert len(operations) >= 12
    for operation in operations:
        _fuzz(operation, headers)


def _fuzz(operation, headers: dict[str, str]) -> None:
    @given(case=operation.as_strategy())
    @hypothesis_settings(
        max_examples=EXAMPLES_PER_OPERATION,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        database=None,
    )
    def check(case) -> None:
        for auth in (headers, {}):
            response = case.call(headers=auth)
            assert response.status_code < 500, (case.method, case.path, response.text)
            content_type = " ".join(response.headers.get("content-type", []))
            if content_type.startswith("application/json") and response.status_code >= 400:
                body = response.json()
                assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}

    check()
