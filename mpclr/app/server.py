"""`mpclr app`: Voilà serving the two pages of notebooks/app/ (workshop.ipynb, study.ipynb).

Safe by default: it listens on 127.0.0.1 only and asks for a token (a fresh random one unless one is given,
printed in the URL once); Voilà refuses to execute code sent by a page (only widget messages reach the
kernel) and shows no sources. Each page load gets its own kernel; a page's uploads live in that kernel's
temporary folder (mpclr.app.sources), gone when the kernel ends: when the server stops, or `--cull-idle`
seconds after its page went away. Without a token it only listens on a
loopback address: to reach it from other machines, keep the token (behind TLS) or put the institution's
reverse proxy, which authenticates users, in front of a loopback server (README, "The app").
"""

from __future__ import annotations

import argparse
import ipaddress
import secrets
import sys
from pathlib import Path

from ..errors import ParameterError

__all__ = ["add_app_parser", "voila_argv", "app_dir", "MAX_UPLOAD_MB"]

MAX_UPLOAD_MB = 64  # an upload travels in one websocket message (tornado's default limit: 10 MiB)


def app_dir() -> Path:
    from ..notebooks.paths import notebooks_dir

    path = notebooks_dir() / "app"
    if not (path / "study.ipynb").is_file() or not (path / "workshop.ipynb").is_file():
        raise ParameterError(f"the app's pages are missing from {path} (study.ipynb, workshop.ipynb): run from a "
                             "source checkout of mpclr or set MPCLR_NOTEBOOKS")
    return path


def _loopback(ip: str) -> bool:
    if ip == "localhost":
        return True
    try:
        return ipaddress.ip_address(ip).is_loopback
    except ValueError:
        return False


def voila_argv(ip: str = "127.0.0.1", port: int = 8866, token: str | None = "", cull_idle: int = 600) -> list[str]:
    """Voilà's command line for the app (token "" or None: none; only on a loopback address). cull_idle:
    seconds after which a kernel that no page is connected to, and that sent nothing, is shut down: Voilà
    0.5's own shutdown when a page closes is refused for want of an XSRF cookie, and a kernel's uploads
    live as long as it does."""
    if not token and not _loopback(ip):
        raise ParameterError(f"parameter ip {ip!r} is not a loopback address: without a token anyone who reaches it "
                             "could run studies. Keep a token (the default), or serve on 127.0.0.1 behind your "
                             "institution's reverse proxy")
    if not 0 < port < 65536:
        raise ParameterError(f"parameter port must be in 1..65535, got {port}")
    if not isinstance(cull_idle, int) or cull_idle < 1:
        raise ParameterError(f"parameter cull_idle must be a number of seconds >= 1, got {cull_idle!r}")
    argv = [str(app_dir()), f"--Voila.ip={ip}", f"--port={port}", "--Voila.port_retries=0", "--no-browser",
            "--VoilaConfiguration.show_tracebacks=False",
            f"--MappingKernelManager.cull_idle_timeout={cull_idle}",
            f"--MappingKernelManager.cull_interval={min(60, max(1, cull_idle // 2))}"]
    if token:
        argv.append(f"--token={token}")
    return argv


def _serve(args) -> int:
    from voila.app import Voila

    token = None if args.no_token else (args.token or secrets.token_urlsafe(24))
    argv = voila_argv(args.ip, args.port, token, args.cull_idle)
    host = f"[{args.ip}]" if ":" in args.ip else args.ip
    query = f"?token={token}" if token else ""
    print(f"mpclr app: http://{host}:{args.port}/voila/render/workshop.ipynb{query}\n"
          f"           http://{host}:{args.port}/voila/render/study.ipynb{query}", file=sys.stderr, flush=True)
    Voila.launch_instance(argv=argv, tornado_settings={"websocket_max_message_size": MAX_UPLOAD_MB * 2**20})
    return 0


def add_app_parser(sub) -> None:
    p = sub.add_parser("app", help="the workshop and study pages in the browser (Voilà, on 127.0.0.1)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--ip", default="127.0.0.1", help="address to listen on (default 127.0.0.1, this machine only)")
    p.add_argument("--port", type=int, default=8866, help="port (default 8866)")
    who = p.add_mutually_exclusive_group()
    who.add_argument("--token", default=None, help="the token pages need (default: a fresh random one, printed)")
    who.add_argument("--no-token", action="store_true",
                     help="no token (only on a loopback address: for one user's own machine, or behind a proxy)")
    p.add_argument("--cull-idle", type=int, default=600, metavar="SECONDS",
                   help="shut down a page's kernel (and remove its uploads) this long after its page went away "
                        "(default 600)")
    p.set_defaults(func=_serve)
