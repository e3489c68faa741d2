"""The read models of an installation: the projection over its event store, also used to
catch up on demand (a report always answers from a view at the event store's head)."""

from __future__ import annotations

from application.store import HousingChain
from config.settings import Settings
from projections.runner import ProjectionRunner
from projections.view import open_view


def projection_for(settings: Settings) -> ProjectionRunner:
    return ProjectionRunner(HousingChain(env=settings.event_store_env("events")),
                            open_view(settings.view_env()))
