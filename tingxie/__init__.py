"""Shared core of tingxie: settings, ORM models, storage, job states and the task queue."""
