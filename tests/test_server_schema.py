"""Property-based run of the OpenAPI schema (schemathesis, in process): no input may produce a 5xx.

Cases are drawn with schemathesis's hypothesis strategies directly: its pytest plugin (`from_fixture`) does not
run under this project's pytest version, so pyproject.toml turns it (and hypothesis's) off, and schemathesis and
hypothesis are imported when this slow test runs, not whenever the suite is collected.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.test_server_support import build_models_dir, wait_ready
from vocoder_server import Settings, create_app

EXAMPLES = 100
ROUTES = {"POST /v1/synthesize", "POST /v1/vocode", "POST /v1/audio/speech", "GET /v1/voices", "GET /"}
"""Operations every run must reach (the others are drawn too)."""


@pytest.fixture(scope="module")
def api_schema(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """The schema of a started app; a short timeout bounds any generated input that does start synthesis."""
    models = build_models_dir(tmp_path_factory.mktemp("models"))
    app = create_app(Settings(models_dir=models, device="cpu", timeout=5.0, max_upload_bytes=256 * 1024))
    with TestClient(app) as client:
        wait_ready(client.get)
        import schemathesis

        yield schemathesis.openapi.from_asgi("/openapi.json", app)


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["positive", "negative"], ids=["valid", "invalid"])
def test_no_input_produces_a_server_error(api_schema: Any, mode: str) -> None:
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st
    from schemathesis import GenerationMode
    from schemathesis.checks import not_a_server_error

    generation = GenerationMode(mode)
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert {operation.label for operation in operations} >= {*ROUTES, "GET /v1/models", "POST /v1/tts"}
    cases = st.one_of([operation.as_strategy(generation_mode=generation) for operation in operations])
    seen: set[str] = set()

    @given(case=cases)
    @settings(
        max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True, database=None
    )
    def check(case: Any) -> None:
        seen.add(case.operation.label)
        case.call_and_validate(checks=[not_a_server_error])

    check()
    # The page takes no input at all: nothing invalid can be made of it.
    assert seen >= (ROUTES if generation == GenerationMode.POSITIVE else ROUTES - {"GET /"})
