"""Speech engines behind one interface: a batch of 16 kHz mono windows in, one transcription per window out.

The engines are pure: numpy arrays and dataclasses, no database, storage or Celery."""
