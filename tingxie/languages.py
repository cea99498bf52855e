"""Language codes of the API and how each speech-recognition engine spells them.

API codes are ISO 639-1 where one exists, ISO 639-3 otherwise ("yue", "fil", "wuu", "nan"),
and "zh-<region>" / "yue-<region>" for the Chinese dialects Qwen3-ASR recognises.
"auto" is not a language: callers turn it into None (detect) before using this module.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Language:
    code: str
    qwen_name: str
    whisper_code: str | None
    parent: str | None = None


def _language(code: str, qwen_name: str, whisper_code: str | None = None) -> Language:
    return Language(code, qwen_name, code if whisper_code is None else whisper_code)


def _dialect(code: str, qwen_name: str, parent: str) -> Language:
    return Language(code, qwen_name, parent, parent)


# The 30 languages of the Qwen3-ASR model card, spelled as in transformers'
# Qwen3ASRProcessor LANGUAGE_CODE_TO_NAME ("language <Name><asr_text>").
QWEN_LANGUAGES: tuple[Language, ...] = (
    _language("zh", "Chinese"),
    _language("en", "English"),
    _language("yue", "Cantonese"),
    _language("ar", "Arabic"),
    _language("de", "German"),
    _language("fr", "French"),
    _language("es", "Spanish"),
    _language("pt", "Portuguese"),
    _language("id", "Indonesian"),
    _language("it", "Italian"),
    _language("ko", "Korean"),
    _language("ru", "Russian"),
    _language("th", "Thai"),
    _language("vi", "Vietnamese"),
    _language("ja", "Japanese"),
    _language("tr", "Turkish"),
    _language("hi", "Hindi"),
    _language("ms", "Malay"),
    _language("nl", "Dutch"),
    _language("sv", "Swedish"),
    _language("da", "Danish"),
    _language("fi", "Finnish"),
    _language("pl", "Polish"),
    _language("cs", "Czech"),
    _language("fil", "Filipino", "tl"),
    _language("fa", "Persian"),
    _language("el", "Greek"),
    _language("hu", "Hungarian"),
    _language("mk", "Macedonian"),
    _language("ro", "Romanian"),
)

# Labels the model may report but cannot be forced with: the 22 Chinese dialects of the
# model card (forced as their parent language) and Uyghur, which the original qwen-asr
# package lists as supported although transformers' processor does not accept it.
QWEN_REPORTED_ONLY: tuple[Language, ...] = (
    _dialect("zh-anhui", "Anhui", "zh"),
    _dialect("zh-dongbei", "Dongbei", "zh"),
    _dialect("zh-fujian", "Fujian", "zh"),
    _dialect("zh-gansu", "Gansu", "zh"),
    _dialect("zh-guizhou", "Guizhou", "zh"),
    _dialect("zh-hebei", "Hebei", "zh"),
    _dialect("zh-henan", "Henan", "zh"),
    _dialect("zh-hubei", "Hubei", "zh"),
    _dialect("zh-hunan", "Hunan", "zh"),
    _dialect("zh-jiangxi", "Jiangxi", "zh"),
    _dialect("zh-ningxia", "Ningxia", "zh"),
    _dialect("zh-shandong", "Shandong", "zh"),
    _dialect("zh-shaanxi", "Shaanxi", "zh"),
    _dialect("zh-shanxi", "Shanxi", "zh"),
    _dialect("zh-sichuan", "Sichuan", "zh"),
    _dialect("zh-tianjin", "Tianjin", "zh"),
    _dialect("zh-yunnan", "Yunnan", "zh"),
    _dialect("zh-zhejiang", "Zhejiang", "zh"),
    _dialect("yue-hk", "Cantonese (Hong Kong accent)", "yue"),
    _dialect("yue-gd", "Cantonese (Guangdong accent)", "yue"),
    _dialect("wuu", "Wu language", "zh"),
    _dialect("nan", "Minnan language", "zh"),
    Language("ug", "Uyghur", None),
)

_BY_CODE = {language.code: language for language in QWEN_LANGUAGES + QWEN_REPORTED_ONLY}
_NAME_ALIASES = {"wu": "wuu", "minnan": "nan", "hokkien": "nan", "mandarin": "zh"}
# Whisper spells Javanese "jw"; every other Whisper code is already the API code.
_WHISPER_TO_API = {"tl": "fil", "jw": "jv"}
_API_TO_WHISPER = {api: whisper for whisper, api in _WHISPER_TO_API.items()}

SUPPORTED_CODES: frozenset[str] = frozenset(_BY_CODE)
FORCEABLE_CODES: frozenset[str] = frozenset(language.code for language in QWEN_LANGUAGES)

# Whisper's 100 language tokens (large-v3 added "yue"), as transformers' WhisperTokenizer lists them.
_WHISPER_TOKENS = """
en zh de es ru ko fr ja pt tr pl ca nl ar sv it id hi fi vi he uk el ms cs ro da hu ta no th ur hr
bg lt la mi ml cy sk te fa lv bn sr az sl kn et mk br eu is hy ne mn bs kk sq sw gl mr pa si km sn
yo so af oc ka be tg sd gu am yi lo uz fo ht ps tk nn mt sa lb my bo tl mg as tt haw ln ha ba jw su
yue
"""
WHISPER_CODES: tuple[str, ...] = tuple(_WHISPER_TOKENS.split())
WHISPER_API_CODES: frozenset[str] = frozenset(_WHISPER_TO_API.get(code, code) for code in WHISPER_CODES)

# Scripts written without spaces between words: their segments (and words) are joined without a separator.
UNSPACED_LANGUAGES = frozenset({"zh", "yue", "ja", "th", "lo", "my", "km"})


def _key(text: str) -> str:
    return " ".join(text.split()).casefold()


_BY_NAME = {_key(language.qwen_name): language.code for language in _BY_CODE.values()} | _NAME_ALIASES


def normalize_code(code: str) -> str:
    """Return the canonical spelling of an API code ("ZH-Sichuan" -> "zh-sichuan")."""
    return code.strip().lower()


def lookup(code: str) -> Language:
    """Look up a Qwen3-ASR language by API code; ValueError when unknown."""
    try:
        return _BY_CODE[normalize_code(code)]
    except KeyError:
        raise ValueError(f"unsupported language code: {code!r}") from None


def to_engine_name(code: str) -> str:
    """The name Qwen3-ASR uses for an API code ("en" -> "English")."""
    return lookup(code).qwen_name


def forced_engine_name(code: str) -> str:
    """The name to force Qwen3-ASR with: dialects are forced as their parent language."""
    entry = lookup(code)
    if entry.parent is not None:
        return to_engine_name(entry.parent)
    if entry.code not in FORCEABLE_CODES:
        raise ValueError(f"Qwen3-ASR cannot be forced to transcribe {code!r}")
    return entry.qwen_name


def from_engine_name(name: str | None) -> str | None:
    """The API code for a language name reported by Qwen3-ASR; None when unknown."""
    if not name:
        return None
    return _BY_NAME.get(_key(name))


def to_whisper_code(code: str) -> str:
    """The Whisper language code for an API code ("fil" -> "tl", "zh-sichuan" -> "zh")."""
    code = normalize_code(code)
    entry = _BY_CODE.get(code)
    if entry is not None and entry.whisper_code is not None:
        return entry.whisper_code
    return _API_TO_WHISPER.get(code, code)


def from_whisper_code(whisper_code: str | None) -> str | None:
    """The API code for a Whisper language code ("tl" -> "fil"); None when empty."""
    if not whisper_code:
        return None
    code = normalize_code(whisper_code)
    return _WHISPER_TO_API.get(code, code)


def is_spaced(language: str | None) -> bool:
    """Whether the language's script puts spaces between words."""
    return language not in UNSPACED_LANGUAGES


def space_between(before: str, after: str, spaced: bool) -> bool:
    """Whether two words are written with a space between them: always in a spaced script; in an unspaced
    one only between two Latin words or numbers ("用 Python 3")."""
    if spaced:
        return True
    last, first = before[-1:], after[:1]
    return last.isascii() and last.isalnum() and first.isascii() and first.isalnum()


def join_words(words: Sequence[str], language: str | None) -> str:
    spaced, text = is_spaced(language), ""
    for word in words:
        text += (" " if text and space_between(text, word, spaced) else "") + word
    return text
