"""schemathesis against the platform's own OpenAPI document: requests that fit it and requests that do
not, for every operation, and not one server error.

The run is bounded (EXAMPLES per operation and mode) so that it costs seconds, not minutes, of the suite;
hypothesis draws new inputs on every run. Jobs it manages to create hold random bytes, and fail as
`invalid_audio` on the shared workers."""

import hypothesis
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given
from schemathesis import Case, GenerationMode

from tests.conftest import Platform

EXAMPLES = 15


def _operations(platform: Platform) -> list[schemathesis.schemas.APIOperation]:
    schema = schemathesis.openapi.from_url(f"{platform.url}/openapi.json")
    return [result.ok() for result in schema.get_all_operations()]


BOUNDED = hypothesis.settings(
    max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck)
)


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_no_operation_answers_with_a_server_error(platform: Platform, mode: GenerationMode) -> None:
    server_errors: list[str] = []
    operations = _operations(platform)
    assert len(operations) > 10, [operation.label for operation in operations]
    with requests.Session() as session:

        def call(case: Case) -> None:
            response = case.call(base_url=platform.url, session=session, timeout=120)
            if response.status_code >= 500:
                server_errors.append(f"{case.method} {case.formatted_path}: {response.status_code} {response.text}")

        for operation in operations:
            try:
                BOUNDED(given(operation.as_strategy(generation_mode=mode))(call))()
            except hypothesis.errors.Unsatisfiable:
                assert mode == GenerationMode.NEGATIVE  # an operation with no input at all has no wrong one
    assert server_errors == []
