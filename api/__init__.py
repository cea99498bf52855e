"""HTTP front end (FastAPI): accepts uploads, streams them to storage, enqueues jobs, serves results."""
