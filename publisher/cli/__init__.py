"""The command line: the only place that prints or exits.

Every error is one line (what, which object, what to do) and a non-zero exit; `-v` shows
the traceback. Commands live in the modules beside this one, registered on one group.
"""

from __future__ import annotations

import sys
import traceback

import click

from publisher.cli import register, secrets_cmd  # noqa: F401  (they register their commands)
from publisher.cli import run as _run  # noqa: F401
from publisher.cli import sar as _sar  # noqa: F401
from publisher.cli.app import cli

__all__ = ["cli", "main"]


def main(argv: list[str] | None = None) -> int:
    from publisher.errors import PublisherError

    verbose = "-v" in (argv or sys.argv[1:]) or "--verbose" in (argv or sys.argv[1:])
    try:
        cli.main(args=argv, prog_name="publisher", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("Aborted: nothing changed.", err=True)
        return 1
    except click.UsageError as exc:
        where = f" (see '{exc.ctx.command_path} --help')" if exc.ctx else ""
        click.echo(f"error: {exc.format_message()}{where}", err=True)
        return exc.exit_code
    except click.ClickException as exc:
        click.echo(f"error: {exc.format_message()}", err=True)
        return exc.exit_code
    except PublisherError as exc:
        if verbose:
            traceback.print_exc()
        click.echo(f"error: {exc}", err=True)
        return 1
    except KeyboardInterrupt:
        click.echo("Interrupted.", err=True)
        return 130
    except Exception as exc:  # a defect, not a user error: one line, no data, details on -v
        if verbose:
            traceback.print_exc()
        click.echo(
            f"error: internal error ({type(exc).__name__}); nothing was changed. Run with -v for details and report it",
            err=True,
        )
        return 70
    return 0
