"""A stream trigger's dead letters as its page lists them: the newest ones with their
reason and source position, and the run link of those redriven. (The redrive itself is
the API's route function, posted from the page: see ``pages.redrive``.)"""

from __future__ import annotations

from dataclasses import dataclass

from sqlmodel.ext.asyncio.session import AsyncSession
from temporalio.service import RPCError

from api import control
from api.state import AppState
from api.ui.live_log import run_url
from triggers.infra import dead_letters
from triggers.infra.models import DeadLetter, Trigger
from triggers.providers import find_provider
from triggers.providers.stream import StreamProvider

# The page shows the newest this many (the API pages through all of them).
SHOWN = 20


@dataclass(frozen=True)
class Listing:
    rows: list[DeadLetter]
    total: int
    dropped: int
    # Run links of the redriven rows whose run exists (by dead-letter id).
    runs: dict[str, str]


def is_stream(trigger: Trigger) -> bool:
    info = find_provider(trigger.provider)
    source = None if info is None else info.source
    return isinstance(source, type) and issubclass(source, StreamProvider)


async def redriven_run_url(state: AppState, row: DeadLetter) -> str:
    """The Temporal Web UI link of a redriven dead letter's run, once the run exists."""
    if not row.redrive_run_id:
        return ""
    try:
        run = await control.current_run(state.client, row.redrive_run_id)
    except (RPCError, TimeoutError):
        return ""
    return "" if run is None else run_url(state, row.redrive_run_id, run)


async def listing(state: AppState, db: AsyncSession, trigger: Trigger) -> Listing:
    rows, _ = await dead_letters.list_page(db, trigger_id=trigger.id, limit=SHOWN)
    runs = {}
    for row in rows:
        if url := await redriven_run_url(state, row):
            runs[str(row.id)] = url
    return Listing(
        rows=list(rows),
        total=await dead_letters.count(db, trigger_id=trigger.id),
        dropped=await dead_letters.dropped(db, trigger_id=trigger.id),
        runs=runs,
    )
