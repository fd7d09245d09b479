"""HTTP routes: the caller's notification inbox."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from dispatch.notifications import schemas, service
from fleet.deps import CurrentPrincipal, Session
from fleet.schemas import ERROR_RESPONSES, PageParams, page_params

router = APIRouter(responses=ERROR_RESPONSES, tags=["notifications"])
Paging = Annotated[PageParams, Depends(page_params)]


@router.get("/me/notifications", response_model=schemas.NotificationPage)
async def list_notifications(
    session: Session,
    principal: CurrentPrincipal,
    paging: Paging,
    unread: Annotated[bool, Query(description="only unread ones")] = False,
    kind: Annotated[str | None, Query(max_length=40)] = None,
) -> schemas.NotificationPage:
    """My notifications, newest first (also pushed live as `notification` events)."""
    rows, total, unread_n = await service.list_mine(
        session, principal, unread_only=unread, kind=kind, **paging.model_dump()
    )
    return schemas.NotificationPage(
        items=[schemas.NotificationOut.model_validate(r) for r in rows],
        total=total,
        unread=unread_n,
        **paging.model_dump(),
    )


@router.post("/me/notifications/read", response_model=schemas.MarkReadOut)
async def mark_read(
    body: schemas.MarkRead, session: Session, principal: CurrentPrincipal
) -> schemas.MarkReadOut:
    """Mark some (`ids`) or all (`all: true`) of my unread notifications read."""
    marked, unread = await service.mark_read(session, principal, body.ids, everything=body.all)
    return schemas.MarkReadOut(marked=marked, unread=unread)
