"""The reconciler deletes what is stored for an id that is neither a job nor an upload, once nothing has
been written there for TINGXIE_ORPHAN_AFTER_SECONDS: objects a refused request's late write or a process
killed between storing an upload and recording its job left behind. Anything a row owns stays, and so
does an orphan still young enough to be a request in progress."""

import uuid
from datetime import timedelta
from pathlib import Path

import pytest
import redis

from tests.corpus import OSR
from tests.helpers import stored_job
from tingxie.db import session_scope
from tingxie.errors import ObjectMissing
from tingxie.models import Upload, utcnow
from tingxie.settings import get_settings
from tingxie.storage import JOBS_PREFIX, LocalStorage, Storage, get_storage, job_prefix, source_key
from worker.reconcile import sweep_orphans


def _exists(storage: Storage, key: str) -> bool:
    try:
        storage.get_bytes(key)
    except ObjectMissing:
        return False
    return True


def test_an_orphan_is_deleted_once_old_and_what_rows_own_is_kept(idle_broker: redis.Redis) -> None:
    storage = get_storage()
    orphan, upload_id = uuid.uuid4(), uuid.uuid4()
    storage.put_bytes(source_key(orphan), b"left behind")
    storage.put_bytes(f"{job_prefix(orphan)}chunks/0.flac", b"left behind too")
    storage.put_bytes(source_key(upload_id), b"a direct upload")
    with session_scope() as session:
        session.add(Upload(id=upload_id, token_hash="0" * 64, size=15, expires_at=utcnow() + timedelta(days=2)))
    job_id = stored_job(OSR)

    assert sweep_orphans(utcnow()) == 0  # just written: maybe a request between storing and recording
    assert _exists(storage, source_key(orphan))

    later = utcnow() + timedelta(seconds=get_settings().orphan_after_seconds + 60)
    assert sweep_orphans(later) >= 1  # other tests' leftovers may go too
    assert not _exists(storage, source_key(orphan))
    assert not _exists(storage, f"{job_prefix(orphan)}chunks/0.flac")
    assert _exists(storage, source_key(upload_id)) and _exists(storage, source_key(job_id))
    storage.delete_prefix(source_key(upload_id))


def test_local_storage_lists_its_folders_with_their_newest_write(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    first, second = uuid.uuid4(), uuid.uuid4()
    storage.put_bytes(source_key(first), b"a")
    storage.put_bytes(f"{job_prefix(second)}chunks/3.flac", b"b")
    (tmp_path / JOBS_PREFIX / "not-an-id").mkdir()
    folders = {folder.name: folder.last_written for folder in storage.folders(JOBS_PREFIX)}
    assert set(folders) == {str(first), str(second), "not-an-id"}
    written = (tmp_path / source_key(first)).stat().st_mtime
    assert folders[str(first)].timestamp() == pytest.approx(written)
    assert storage.folders("nowhere/") == []
