"""Schemathesis over the API's own /openapi.json, against the real stack: no input, valid or not, gives a 5xx, an
undocumented status code or a body that breaks the documented schema.

Bounded: at most ``_EXAMPLES`` cases per operation and generation mode (positive and negative), derandomized, so
that a run is reproducible and takes about a minute. Each operation is fuzzed as a fresh user, so that a revoked
key or a deleted account in one operation's cases does not hide another operation behind 401s.

Hypothesis runs in a worker thread: the app and its services (the Temporal client, the Graph client) belong to the
session's event loop, and every request is sent on that loop, through the same ASGI transport as the other tests.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import requests
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Ok
from schemathesis.generation import GenerationMode
from schemathesis.generation.case import Case
from schemathesis.schemas import APIOperation
from schemathesis.specs.openapi.checks import response_schema_conformance, status_code_conformance

from tests.api.helpers import ApiUser

# Cases per operation and generation mode: about a minute for the whole API on two cores.
_EXAMPLES = 100
_CHECKS = [not_a_server_error, status_code_conformance, response_schema_conformance]
_BASE_URL = "http://testserver"


async def test_no_input_gives_a_server_error_or_an_undocumented_answer(
    app: FastAPI, make_user: Callable[[], Awaitable[ApiUser]]
) -> None:
    loop = asyncio.get_running_loop()
    schema = schemathesis.openapi.from_dict(app.openapi())
    operations: list[APIOperation[Any, Any, Any, Any]] = []
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), result.err()
        operations.append(result.ok())
    assert len(operations) > 15, [operation.label for operation in operations]
    users = [await make_user() for _ in operations]
    # A 500 comes back as the answer it is, for the checks to judge, instead of as the app's exception.
    client = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app, raise_app_exceptions=False), base_url=_BASE_URL
    )

    def send(user: ApiUser, case: Case[Any]) -> httpx.Response:
        kwargs = case.as_transport_kwargs(base_url=_BASE_URL, headers={"Authorization": f"Bearer {user.key}"})
        kwargs.pop("cookies", None)
        prepared = requests.Request(**kwargs).prepare()
        assert prepared.method is not None and prepared.url is not None
        body = prepared.body.encode() if isinstance(prepared.body, str) else prepared.body
        assert body is None or isinstance(body, bytes), type(body)
        headers = {
            name: value if isinstance(value, str) else value.decode("latin-1")
            for name, value in prepared.headers.items()
        }
        call = client.request(prepared.method, prepared.url, headers=headers, content=body)
        return asyncio.run_coroutine_threadsafe(call, loop).result(timeout=60)

    def fuzz(operation: APIOperation[Any, Any, Any, Any], user: ApiUser, mode: GenerationMode) -> None:
        @settings(
            max_examples=_EXAMPLES,
            derandomize=True,
            database=None,
            deadline=None,
            phases=[Phase.explicit, Phase.generate],  # no shrinking: the first failure is reported as found
            suppress_health_check=list(HealthCheck),
        )
        @given(case=operation.as_strategy(generation_mode=mode))
        def run(case: Case[Any]) -> None:
            response = send(user, case)
            try:
                case.validate_response(response, checks=_CHECKS)
            # Schemathesis reports its checks' failures as a FailureGroup, a BaseExceptionGroup.
            except (Exception, BaseExceptionGroup) as failure:
                failure.add_note(f"{case.method} {case.formatted_path} -> {response.status_code}")
                failure.add_note(f"sent: {case.as_curl_command()}")
                failure.add_note(f"answer: {response.text[:500]}")
                raise

        run()

    def fuzz_all() -> list[str]:
        failures = []
        for operation, user in zip(operations, users, strict=True):
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                try:
                    fuzz(operation, user, mode)
                except Unsatisfiable:  # nothing to make invalid: the operation takes no input
                    assert mode is GenerationMode.NEGATIVE, operation.label
                except (Exception, BaseExceptionGroup) as failure:
                    notes = "\n    ".join(getattr(failure, "__notes__", []))
                    failures.append(f"{operation.label} ({mode.value}): {failure}\n    {notes}")
        return failures

    async with client:
        failures = await asyncio.to_thread(fuzz_all)
    assert not failures, f"{len(failures)} operations failed:\n\n" + "\n\n".join(failures)
