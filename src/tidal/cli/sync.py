"""``tidal sync``: send what runs kept in their offline spool (their store was away) to the store."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from tidal import settings
from tidal.errors import StoreError
from tidal.tracking.spool import sync as sync_spools


def sync(
    run_ids: Annotated[Optional[list[str]], typer.Argument(
        help="Runs to send (ids or id prefixes); default: every spooled run.", show_default=False)] = None,
    uri: Annotated[Optional[str], typer.Option(
        "--uri", help="Send to this store instead of the one each run logged to (http(s)://, "
                      "postgresql://, sqlite:///).")] = None,
    force: Annotated[bool, typer.Option(
        "--force", help="Also send runs whose process still runs (it would send them itself).")] = False,
) -> None:
    """Send the records that runs kept in TIDAL_SPOOL while their store could not be reached.

    Each run goes to the store it was logging to (TIDAL_TRACKING_URI when it names that store, for
    its password), or to --uri. What is sent is deleted from the spool; sending twice is harmless.
    """
    results = sync_spools(run_ids or None, uri=uri, force=force, warn=lambda text: typer.echo(f"tidal: {text}",
                                                                                                err=True))
    if not results:
        typer.echo(f"nothing to send: no spooled runs in {settings.spool_folder()}")
        return
    for result in results:
        typer.echo(f"{result.run_id}: {result.sent} sent, {result.left} left ({result.note})")
    stuck = [result.run_id for result in results if result.left]
    if stuck:
        raise StoreError(f"{len(stuck)} spooled run(s) not sent ({', '.join(stuck)}); they stay in "
                         f"{settings.spool_folder()}: run `tidal sync` again when the store answers")
