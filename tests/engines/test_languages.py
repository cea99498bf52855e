"""The API <-> engine language mapping, checked against what transformers accepts."""

from __future__ import annotations

import pytest
from transformers.models.qwen3_asr.processing_qwen3_asr import LANGUAGE_CODE_TO_NAME
from transformers.models.whisper.tokenization_whisper import LANGUAGES as WHISPER_LANGUAGES

from tingxie.languages import (
    FORCEABLE_CODES,
    QWEN_LANGUAGES,
    QWEN_REPORTED_ONLY,
    SUPPORTED_CODES,
    WHISPER_API_CODES,
    WHISPER_CODES,
    forced_engine_name,
    from_engine_name,
    from_whisper_code,
    to_engine_name,
    to_whisper_code,
)


def test_qwen_languages_are_exactly_what_the_processor_accepts() -> None:
    assert {entry.qwen_name for entry in QWEN_LANGUAGES} == set(LANGUAGE_CODE_TO_NAME.values())
    assert len(QWEN_LANGUAGES) == 30


@pytest.mark.parametrize("code", sorted(SUPPORTED_CODES))
def test_code_round_trip(code: str) -> None:
    assert from_engine_name(to_engine_name(code)) == code


@pytest.mark.parametrize("name", sorted(LANGUAGE_CODE_TO_NAME.values()))
def test_name_round_trip(name: str) -> None:
    assert to_engine_name(from_engine_name(name)) == name


def test_names_are_matched_tolerantly() -> None:
    assert from_engine_name("english") == "en"
    assert from_engine_name("  CANTONESE ") == "yue"
    assert from_engine_name("Cantonese  (Hong Kong accent)") == "yue-hk"
    assert from_engine_name("Wu") == "wuu"


@pytest.mark.parametrize("name", [None, "", "None", "Klingon"])
def test_unknown_names_are_none(name: str | None) -> None:
    assert from_engine_name(name) is None


def test_every_forced_name_is_accepted_by_the_processor() -> None:
    accepted = set(LANGUAGE_CODE_TO_NAME.values())
    forceable = [code for code in SUPPORTED_CODES if code != "ug"]
    assert {forced_engine_name(code) for code in forceable} <= accepted


def test_dialects_are_forced_as_their_parent() -> None:
    assert forced_engine_name("zh-sichuan") == "Chinese"
    assert forced_engine_name("nan") == "Chinese"
    assert forced_engine_name("yue-hk") == "Cantonese"


def test_reported_only_languages_cannot_be_forced() -> None:
    assert "ug" not in FORCEABLE_CODES
    with pytest.raises(ValueError, match="cannot be forced"):
        forced_engine_name("ug")


def test_supported_codes() -> None:
    assert {entry.code for entry in QWEN_LANGUAGES + QWEN_REPORTED_ONLY} == SUPPORTED_CODES
    with pytest.raises(ValueError, match="unsupported language code"):
        to_engine_name("xx")


@pytest.mark.parametrize("code", sorted(FORCEABLE_CODES))
def test_whisper_round_trip(code: str) -> None:
    whisper_code = to_whisper_code(code)
    assert whisper_code in WHISPER_LANGUAGES
    assert from_whisper_code(whisper_code) == code


def test_whisper_spellings() -> None:
    assert to_whisper_code("fil") == "tl"
    assert to_whisper_code("zh-sichuan") == "zh"
    assert to_whisper_code("yue-hk") == "yue"
    assert to_whisper_code("uk") == "uk"
    assert from_whisper_code("jw") == "jv"
    assert to_whisper_code("jv") == "jw"
    assert from_whisper_code(None) is None


def test_every_whisper_language_maps_to_a_distinct_api_code() -> None:
    api_codes = [from_whisper_code(code) for code in WHISPER_LANGUAGES]
    assert len(set(api_codes)) == len(WHISPER_LANGUAGES)


def test_whisper_languages_are_exactly_the_tokenizers() -> None:
    assert tuple(WHISPER_LANGUAGES) == WHISPER_CODES
    assert {from_whisper_code(code) for code in WHISPER_LANGUAGES} == WHISPER_API_CODES
