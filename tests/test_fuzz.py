"""Fuzz the whole OpenAPI schema with schemathesis: whatever the bodies and parameters, the API
answers with a documented client error, never a 5xx — on the real app, served by uvicorn,
with real Postgres and Redis behind it. Then the text a generator rarely makes but an attacker
does (NUL, escapes, lone surrogates, 5,000 characters) in every string field.

Cases are drawn per operation with Hypothesis inside one test (schemathesis's pytest plugin
does not load under this pytest version)."""

from __future__ import annotations

import json
import uuid

import schemathesis
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings

from tests.factories import Phone

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


ODD_TEXT = {
    "nul": "a\x00b",
    "escape": "\x1b[2J",
    "newline": "line\nbreak",
    "over-long": "x" * 5000,
    "blank": "   ",
}
LONE_SURROGATE = '"\\ud800"'  # valid JSON, not valid Unicode: Postgres refuses it


def _valid_bodies(group_id: str, session_id: str, user_id: str) -> dict[tuple[str, str], dict]:
    speaker = str(uuid.uuid4())
    return {
        ("post", "/groups"): {"name": "Kopi kakis"},
        ("post", "/groups/{group_id}/members"): {"user_id": user_id, "display_name": "Ah Beng"},
        ("patch", "/me"): {"display_name": "Wei Ling"},
        ("patch", "/me/voiceprint"): {"remember_voice": False},
        ("patch", "/groups/{group_id}"): {"auto_claim_voices": True},
        ("post", "/sessions/start"): {"group_id": group_id},
        ("post", "/sessions/{session_id}/end"): {"webhook_url": "https://8.8.8.8/hook"},
        ("post", "/sessions/{session_id}/reprocess"): {"num_speakers": 3},
        ("post", "/sessions/{session_id}/claim"): {
            "speaker_id": speaker,
            "claim_type": "guest",
            "guest_name": "Uncle Tan",
        },
        ("post", "/sessions/{session_id}/occurrences/{occurrence_id}/dispute"): {
            "reason": "that wasn't 'lah'"
        },
        ("post", "/sessions/{session_id}/occurrences/{occurrence_id}/confirm"): {
            "reason": "I did say it"
        },
    }


def _string_fields(spec: dict, schema: dict) -> set[str]:
    schema = _deref(spec, schema)
    fields = set()
    for name, prop in schema.get("properties", {}).items():
        options = [_deref(spec, o) for o in prop.get("anyOf", [prop])]
        if any(o.get("type") == "string" for o in options):
            fields.add(name)
    return fields


def _deref(spec: dict, schema: dict) -> dict:
    ref = schema.get("$ref")
    return _deref(spec, spec["components"]["schemas"][ref.rsplit("/", 1)[1]]) if ref else schema


def test_odd_text_in_any_field_is_a_clear_422(client, make_user):
    """Every string field of every JSON body (read from the OpenAPI document, so a new field
    is covered or this test fails), and the query's text: NUL, escapes, newlines, 5,000
    characters, blanks and a lone surrogate get 422 validation_error, never a 500."""
    owner, friend = make_user(), make_user()
    group_id, session_id = Phone(client, owner.headers).session()
    spec = client.get("/openapi.json").json()
    bodies = _valid_bodies(group_id, session_id, str(friend.id))
    covered = 0
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            content = operation.get("requestBody", {}).get("content", {})
            if "application/json" not in content:
                continue
            base = bodies[(method, path)]  # a JSON route without a valid body here: add one
            url = path.format(group_id=group_id, session_id=session_id, occurrence_id=uuid.uuid4())
            for field in _string_fields(spec, content["application/json"]["schema"]):
                if field not in base:
                    continue  # ids and enums: UUID/literal parsing already refuses text
                for case, value in ODD_TEXT.items():
                    body = json.dumps({**base, field: value})
                    _expect_422(client, method, url, body, owner.headers, f"{field} {case}")
                surrogate = json.dumps(base).replace(json.dumps(base[field]), LONE_SURROGATE, 1)
                _expect_422(client, method, url, surrogate, owner.headers, f"{field} surrogate")
                covered += 1
    assert covered >= 5
    for value in ("a\x00b", "x" * 500, "\x07"):
        answer = client.get(
            f"/sessions/{session_id}/occurrences", params={"word": value}, headers=owner.headers
        )
        assert answer.status_code == 422, (value, answer.text)
    # and the connection pool is none the worse for it
    assert client.get(f"/groups/{group_id}", headers=owner.headers).status_code == 200


def _expect_422(client, method: str, url: str, body: str, headers: dict, what: str) -> None:
    answer = client.request(
        method, url, content=body, headers={**headers, "Content-Type": "application/json"}
    )
    assert answer.status_code == 422, (what, answer.status_code, answer.text)
    assert answer.json()["error"]["code"] == "validation_error", what
