"""Language codes the API speaks. Replaced by the full Qwen3-ASR mapping in the engines work."""

SUPPORTED_CODES: tuple[str, ...] = ("en", "zh", "yue", "ja", "ko", "de", "fr", "es")


def is_supported(code: str) -> bool:
    return code in SUPPORTED_CODES
