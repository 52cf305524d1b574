"""The ``portal`` command. Exit status: 0 success, 1 the thing checked failed, 2 usage error."""

from __future__ import annotations

import click

from portal import __version__
from portal.cli.accounts import org, token, user
from portal.cli.audit import audit
from portal.cli.backup import backup, restore
from portal.cli.context import CheckFailure, CliContext, UsageFailure
from portal.cli.destruction import certificate, destroy
from portal.cli.download import download
from portal.cli.exchange import request_group, review
from portal.cli.keys import keys
from portal.cli.server import check, demo, init, serve, worker
from portal.cli.upload import upload


class PortalGroup(click.Group):
    """Turns a key service that does not hold this installation's keys into a clear refusal."""

    def invoke(self, ctx: click.Context) -> object:
        from portal.keys import KeyServiceRefused, NotInitialised

        try:
            return super().invoke(ctx)
        except NotInitialised as refused:
            raise UsageFailure(str(refused)) from None
        except KeyServiceRefused as refused:
            raise CheckFailure(str(refused)) from None


@click.group(cls=PortalGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="portal")
@click.pass_context
def main(ctx: click.Context) -> None:
    """Secure document-exchange portal for thematic reviews."""
    ctx.ensure_object(CliContext)


for command in (
    init,
    serve,
    check,
    demo,
    worker,
    org,
    user,
    token,
    audit,
    upload,
    review,
    request_group,
    download,
    keys,
    destroy,
    certificate,
    backup,
    restore,
):
    main.add_command(command)
