"""The read models of an installation: the projection over its event store, also used to
catch up on demand (a report always answers from a view at the event store's head)."""

from __future__ import annotations

from application.keys import KeyRing, open_keyring
from application.store import HousingChain
from config.settings import Settings
from projections.runner import ProjectionRunner
from projections.view import open_view
from projections.worklist import KINDS

# the kinds of worklist item, which a worklist is filtered by (`kind`): the interfaces, which
# do not reach the projections, check a filter against these
WORKLIST_KINDS = KINDS


def keyring_for(settings: Settings) -> KeyRing:
    """The installation's data keys: beside the SQLite stores, or in the PostgreSQL that holds
    the event store, so that every process (API, worker, CLI) shares one set.

    None under the benchmark-only switch `HOUSING_CHAIN_CODEC=off` (application.codec): text
    is then stored as typed, which is what bench/encryption_cost.py compares against."""
    from application.codec import encryption_enabled

    if not encryption_enabled():
        return None  # type: ignore[return-value] - benchmark only, see encryption_enabled
    return open_keyring(settings.data, settings.postgres_env() if settings.uses_postgres else None)


def projection_for(settings: Settings) -> ProjectionRunner:
    app = HousingChain(env=settings.event_store_env("events"))
    app.keyring = keyring_for(settings)
    return ProjectionRunner(app, open_view(settings.view_env()), page_size=settings.projection_page)
