"""HTTP routes: a vehicle's terminal link and the console's commands to its terminal."""

from __future__ import annotations

from fastapi import APIRouter

from fleet.deps import CurrentPrincipal, Session
from fleet.schemas import ERROR_RESPONSES, Id
from telematics.jt808 import schemas, service

router = APIRouter(responses=ERROR_RESPONSES, tags=["terminal commands"])


@router.get("/vehicles/{vehicle_id}/terminal", response_model=schemas.TerminalLinkOut)
async def vehicle_terminal(
    vehicle_id: Id, session: Session, principal: CurrentPrincipal
) -> schemas.TerminalLinkOut:
    """The vehicle's terminal: online or not (as the JT/T 808 gateway sees it), last seen,
    and its 20 most recent commands with the terminal's answers."""
    return await service.terminal_link(session, principal, vehicle_id)


@router.post(
    "/vehicles/{vehicle_id}/terminal/commands",
    response_model=schemas.CommandOut,
    status_code=202,
)
async def send_command(
    vehicle_id: Id, body: schemas.CommandIn, session: Session, principal: CurrentPrincipal
) -> schemas.CommandOut:
    """Send a text to the driver's terminal (JT/T 808 0x8300: shown, read aloud) or ask it
    for its position now (0x8201). Queued; the gateway holding the terminal's connection
    delivers it (at once, or when the terminal next logs in; it expires after 10 minutes)
    and records the answer. Dispatchers and administrators, for vehicles in their scope."""
    return await service.send_command(session, principal, vehicle_id, body)
