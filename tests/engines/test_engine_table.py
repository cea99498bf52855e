"""The engine table is the one source of engine facts: the registry builds from it, validation and
/v1/engines read it."""

import importlib

import pytest

from api.jobs.service import validate_language
from tingxie.engines import ENGINES, KNOWN_CODES
from tingxie.errors import InvalidRequest
from tingxie.settings import Settings


@pytest.mark.parametrize("name", sorted(ENGINES))
def test_every_rows_factory_is_a_function_of_its_engine_module(name: str) -> None:
    module, function = ENGINES[name].factory.split(":")
    assert module == f"worker.engines.{name.replace('-', '_')}"
    assert callable(getattr(importlib.import_module(module), function))


@pytest.mark.parametrize("name", sorted(ENGINES))
def test_the_settings_plan_windows_within_the_rows_limit(name: str) -> None:
    assert Settings(engine=name, window_seconds=30).planned_window_seconds == ENGINES[name].window_limit_s


def test_languages_are_validated_against_the_configured_engines_row() -> None:
    assert validate_language("yo", "whisper") == "yo"  # Yoruba: Whisper has it, Qwen3-ASR does not
    with pytest.raises(InvalidRequest) as refused:
        validate_language("yo", "qwen3-asr")
    assert refused.value.code == "unsupported_language"
    assert validate_language("ZH-Sichuan", "qwen3-asr") == "zh-sichuan"
    with pytest.raises(InvalidRequest) as unknown:
        validate_language("xx", "whisper")
    assert unknown.value.code == "invalid_language" and "xx" not in KNOWN_CODES
    assert validate_language(" ", "pocketsphinx") == "auto"
