"""``twin dashboard`` and ``twin dashboard-user``: serve the dashboard, manage its users.

    twin dashboard [--store DIR] [--host 127.0.0.1] [--port 8050] [--users FILE]
                   [--historian FILE ...] [--historian-dir DIR]
    twin dashboard-user add NAME [--users FILE]     # asks for the password twice

Binding anything but a loopback address requires a users file with at least one user. The pages
open only the historians given here; request bodies over ``dashboards.app.MAX_REQUEST_BODY`` are refused.
"""

from __future__ import annotations

import ipaddress
import socket
import sys
from pathlib import Path
from typing import Annotated

import typer

from twin.errors import InputError

StoreOpt = Annotated[
    Path | None, typer.Option("--store", help="Run store folder (default: $TWIN_STORE, else ./twin-runs).")
]
UsersOpt = Annotated[
    Path | None,
    typer.Option("--users", help="Users file (default: $TWIN_DASHBOARD_USERS, else ./twin-dashboard-users.json)."),
]


def is_loopback(host: str) -> bool:
    """Whether ``host`` names only this machine (127.0.0.0/8, ::1, localhost)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _check_bind(host: str, port: int) -> None:
    if not 1 <= port <= 65535:
        raise InputError(f"--port {port}: choose a port from 1 to 65535")
    try:
        socket.getaddrinfo(host, port)
    except socket.gaierror:
        raise InputError(f"--host {host!r}: not an address or host name of this machine") from None


def dashboard_command(
    store: StoreOpt = None,
    host: Annotated[str, typer.Option("--host", help="Address to bind (loopback needs no users).")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Port to listen on.")] = 8050,
    users: UsersOpt = None,
    debug: Annotated[bool, typer.Option("--debug", help="Dash dev tools (reloading, error pop-ups).")] = False,
    historian: Annotated[
        list[Path] | None,
        typer.Option(
            "--historian",
            help="A plant historian (`twin sync --historian`) the Live and Calibrate pages may open. Repeatable.",
        ),
    ] = None,
    historian_dir: Annotated[
        Path | None,
        typer.Option("--historian-dir", help="A folder whose historians the pages may open too (by name or path)."),
    ] = None,
) -> None:
    """Serve the process engineer's dashboard over a run store."""
    from dashboards.auth import default_users_path, load_users
    from twin.store import default_store_path

    _check_bind(host, port)
    loopback = is_loopback(host)
    users_path = users or default_users_path()
    known: dict[str, str] = {}
    if users is not None or users_path.exists():
        known = load_users(users_path)
    if not loopback and not known:
        raise InputError(
            f"--host {host}: serving beyond this machine needs users; add one with "
            f"`twin dashboard-user add NAME --users {users_path}` (and put the dashboard behind TLS)"
        )
    from dashboards.app import MAX_REQUEST_BODY, create_app

    root = store or default_store_path()
    for path in historian or ():
        if not path.is_file():
            raise InputError(f"--historian {path}: no such file (give the file `twin sync --historian` writes)")
    if historian_dir is not None and not historian_dir.is_dir():
        raise InputError(f"--historian-dir {historian_dir}: no such folder")
    app = create_app(root, users=known or None, historians=historian or (), historian_dir=historian_dir)
    shown = f"[{host}]" if ":" in host else host
    auth = f", {len(known)} user(s) from {users_path}" if known else ""
    announce = f"twin dashboard on http://{shown}:{port}/ (store {root}{auth}); Ctrl-C stops it"
    try:  # from here on a Ctrl-C or SIGTERM is the normal way to stop, announced or not
        from dashboards import warm

        if debug:
            print(announce, flush=True)
            warm.start(app, app.server.extensions["twin"])
            app.run(host=host, port=port, debug=True, dev_tools_ui=True, use_reloader=False)
        else:  # a production WSGI server: threads for concurrent users and background-job polling
            import waitress

            server = waitress.create_server(
                app.server,
                host=host,
                port=port,
                threads=8,
                ident="twin dashboard",
                max_request_body_size=MAX_REQUEST_BODY,  # waitress's default is 1 GB
            )
            print(announce, flush=True)  # once the port is open
            warm.start(app, app.server.extensions["twin"])  # the newest runs read once the port is open
            server.run()
    except OSError as err:
        raise InputError(f"--port {port}: cannot listen on {host}:{port} ({err.strerror or err})") from None
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM (twin.cli.entry): the normal way to stop a server
        pass
    from twin.cli.entry import RECEIVED  # waitress returns quietly on an interrupt

    print(f"{RECEIVED[-1] if RECEIVED else 'server ended'}: twin dashboard stopped", flush=True)


def user_add_command(
    name: Annotated[str, typer.Argument(help="User name.")],
    users: UsersOpt = None,
    password_stdin: Annotated[bool, typer.Option("--password-stdin", help="Read the password from stdin.")] = False,
) -> None:
    """Add a dashboard user (or change their password); stores a salted scrypt hash, never the password."""
    from dashboards.auth import add_user, default_users_path

    path = users or default_users_path()
    if password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = typer.prompt("password", hide_input=True, confirmation_prompt=True)
    new = add_user(path, name, password)
    typer.echo(f"{'added' if new else 'updated'} user {name!r} in {path}")


def register(app: typer.Typer) -> None:
    app.command("dashboard")(dashboard_command)
    users = typer.Typer(help="Users of the dashboard (needed to serve it beyond this machine).", no_args_is_help=True)
    users.command("add")(user_add_command)
    app.add_typer(users, name="dashboard-user")
