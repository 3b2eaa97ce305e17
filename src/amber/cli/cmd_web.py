"""web: the dashboard (amber.web); prints its login URL first."""

from __future__ import annotations

import click

from amber.cli.context import AppContext, pass_app
from amber.cli.output import err_console


@click.command("web")
@click.option(
    "--listen",
    default="127.0.0.1:8080",
    show_default=True,
    metavar="HOST:PORT",
    help="Address to serve; anything but loopback needs TLS or --insecure-no-tls.",
)
@click.option("--tls-cert", type=click.Path(exists=True, dir_okay=False), help="PEM certificate for HTTPS.")
@click.option("--tls-key", type=click.Path(exists=True, dir_okay=False), help="PEM private key for HTTPS.")
@click.option("--insecure-no-tls", is_flag=True, help="Allow a non-loopback address without TLS (warns).")
@click.option("--rotate-token", is_flag=True, help="Replace the login token (old sessions end).")
@click.option(
    "--allow-host",
    "allow_hosts",
    multiple=True,
    metavar="NAME",
    help="Another Host header name to accept, e.g. a reverse proxy's (repeat).",
)
@pass_app
def web(app: AppContext, listen: str, tls_cert: str | None, tls_key: str | None, insecure_no_tls: bool,
        rotate_token: bool, allow_hosts: tuple[str, ...]) -> None:  # fmt: skip
    """Serve the dashboard: is every job protected, run history, Run now, /api/v1/status."""
    from amber.web import server  # starlette and uvicorn load only for this command

    options = server.WebOptions(listen, tls_cert, tls_key, insecure_no_tls, rotate_token, allow_hosts)
    warn = lambda m: err_console.print(f"[yellow]{m}[/]", highlight=False)  # noqa: E731
    served = server.prepare(app.config(), options, warn, app.passwords)
    click.echo(served.url, nl=True)
    server.run(served)


COMMANDS = [web]
