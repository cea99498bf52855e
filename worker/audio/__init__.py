"""Audio in: decode anything FFmpeg reads to 16 kHz mono float32, find pauses, plan chunks and windows."""
