"""The ``tidal`` command: one module per command group, each a thin layer over the library."""

from __future__ import annotations

import sys

import typer

from tidal.cli import artifacts as artifacts_commands
from tidal.cli import config as config_commands
from tidal.cli import jobs as jobs_commands
from tidal.cli import logs as logs_command
from tidal.cli import map as map_command
from tidal.cli import pipeline as pipeline_commands
from tidal.cli import queue as queue_commands
from tidal.cli import results as results_commands
from tidal.cli import runs as runs_commands
from tidal.cli import serve as serve_command
from tidal.cli import server as server_commands
from tidal.cli import submit as submit_command
from tidal.cli import sync as sync_command
from tidal.cli import train as train_command
from tidal.errors import TidalError

app = typer.Typer(
    name="tidal", no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
    help="Run ML models over videos and images: resumable, tracked, on all cores.",
)
app.command("map")(map_command.map_)
app.command("run")(pipeline_commands.run)
app.add_typer(pipeline_commands.app, name="pipeline")
app.add_typer(jobs_commands.app, name="jobs")
app.add_typer(results_commands.app, name="results")
app.add_typer(config_commands.app, name="config")
app.command("serve")(serve_command.serve)
app.add_typer(runs_commands.app, name="runs")
app.add_typer(artifacts_commands.app, name="artifacts")
app.command("server")(server_commands.server)
app.command("ui")(server_commands.ui)
app.command("sync")(sync_command.sync)
app.command("train")(train_command.train)
app.command("submit", context_settings=submit_command.CONTEXT)(submit_command.submit)
app.command("logs")(logs_command.logs)
app.add_typer(queue_commands.app, name="queue")


def main() -> None:
    """Entry point: tidal's own errors become one line on stderr and their exit code."""
    try:
        code = app(standalone_mode=False)  # returns the exit code instead of raising SystemExit
    except TidalError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(error.exit_code)
    except (KeyboardInterrupt, typer.Abort):
        sys.exit(130)
    except typer.TyperException as error:  # usage errors: exit 2 with Typer's message
        show = getattr(error, "show", None)
        if show is not None:
            show()
        sys.exit(error.exit_code)
    sys.exit(code if isinstance(code, int) else 0)
