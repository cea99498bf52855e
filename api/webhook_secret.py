"""/v1/webhook-secret: the caller's API key rotates its own webhook signing secret."""

from datetime import datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel

from api.deps import CurrentKey, SessionDep
from tingxie.errors import Conflict
from tingxie.keys import ROTATION_OVERLAP, rotate_webhook_secret

router = APIRouter(prefix="/v1/webhook-secret", tags=["webhooks"])
MAX_OVERLAP_HOURS = 24 * 7


class RotatedSecretOut(BaseModel):
    secret: str  # shown only in this answer
    previous_expires_at: datetime  # deliveries carry the previous secret's signature too until then


@router.post("/rotate", response_model=RotatedSecretOut)
def rotate(
    session: SessionDep,
    key: CurrentKey,
    overlap_hours: Annotated[float, Query(ge=0, le=MAX_OVERLAP_HOURS)] = ROTATION_OVERLAP.total_seconds() / 3600,
) -> RotatedSecretOut:
    """A new secret for the jobs of the calling key; the previous one still signs for `overlap_hours`, so
    receivers can switch without missing a delivery."""
    if key is None:
        raise Conflict(
            "the keyless local mode signs with TINGXIE_WEBHOOK_SECRET (or the one generated into the data "
            "directory): change it there",
            code="keyless_mode",
        )
    rotated = rotate_webhook_secret(session, key, timedelta(hours=overlap_hours))
    return RotatedSecretOut(secret=rotated.secret, previous_expires_at=rotated.previous_expires_at)
