"""The dispatch HTTP surface: one `router` combining the sub-domains' routers (see web/app.py)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse

from dispatch.approvals.api import router as approvals_router
from dispatch.assignments.api import router as assignments_router
from dispatch.costs.api import router as costs_router
from dispatch.notifications.api import router as notifications_router
from dispatch.optimize.api import lifespan as optimize_lifespan
from dispatch.optimize.api import router as optimize_router
from dispatch.optimize.api import suggestions_router
from dispatch.standards.api import router as standards_router
from dispatch.supervision import track as supervision_track
from dispatch.trips.api import router as trips_router
from fleet.deps import CurrentPrincipal, Session
from fleet.schemas import ERROR_RESPONSES, Id

router = APIRouter()
router.include_router(standards_router)
router.include_router(trips_router)
router.include_router(approvals_router)
router.include_router(assignments_router)
router.include_router(costs_router)
router.include_router(optimize_router)
router.include_router(suggestions_router)
router.include_router(notifications_router)

# The API process's resources of the sub-domains (entered by web/app.py).
lifespan = optimize_lifespan

track_router = APIRouter(responses=ERROR_RESPONSES, tags=["trips"])


@track_router.get("/trips/{trip_id}/track-summary", response_model=supervision_track.TrackSummary)
async def track_summary(
    trip_id: Id, session: Session, principal: CurrentPrincipal
) -> supervision_track.TrackSummary:
    """Planned vs actual distance and duration from stored positions; end vs destination."""
    return await supervision_track.track_summary(session, principal, trip_id)


@track_router.get(
    "/trips/{trip_id}/track",
    responses={200: {"content": {"application/geo+json": {}}}},
)
async def track(trip_id: Id, session: Session, principal: CurrentPrincipal) -> JSONResponse:
    """The trip's positions from departure to completion as a GeoJSON LineString Feature."""
    feature = await supervision_track.track_geojson(session, principal, trip_id)
    return JSONResponse(jsonable_encoder(feature), media_type="application/geo+json")


router.include_router(track_router)
