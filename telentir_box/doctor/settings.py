"""Settings checked against the machine and the outside world: the open-file limit
against max_streams, and public_url with the addresses it gives out."""

from __future__ import annotations

import resource
from urllib.parse import urlsplit

from telentir_box.auth.credentials import RESET_PATH
from telentir_box.config import Config, ServerConfig
from telentir_box.doctor.report import NOTE, OK, PROBLEM, Finding
from telentir_box.open_files import files_needed


def check_file_limit(config: Config, limits: tuple[int, int], whose: str = "this process") -> Finding:
    """Each event stream holds a socket; the server raises its soft limit to the hard one
    at start, so the hard limit is what counts. `whose` names the process the limits
    are of: the running server's when there is one."""
    soft, hard = limits
    needed = files_needed(config)
    max_streams = config.events.max_streams
    shown = "unlimited" if hard == resource.RLIM_INFINITY else str(hard)
    if hard != resource.RLIM_INFINITY and hard < needed:
        return Finding(
            "open files",
            PROBLEM,
            f"{whose}: hard limit {shown} is below the {needed} that [events] max_streams = {max_streams}"
            " needs with the database and sockets; raise LimitNOFILE in the unit (or `ulimit -n`),"
            " or lower max_streams",
        )
    return Finding(
        "open files", OK, f"{whose}: hard limit {shown} (soft {soft}) carries max_streams = {max_streams}"
    )


def check_public_url(server: ServerConfig) -> Finding:
    """The address the box gives out, in reset links and to the providers that call back."""
    name = "public url"
    url = server.public_url
    if not url:
        return Finding(
            name,
            NOTE,
            "empty: no webhook can reach this box (Twilio and Stripe have no address to call back) and"
            f" reset links point at http://{server.host}:{server.port}; set [server] public_url",
        )
    if not _well_formed(url):
        return Finding(
            name, PROBLEM, f"{url!r} is not a URL such as https://box.example.com (scheme, host, no query)"
        )
    base = url.rstrip("/")
    parts = urlsplit(url)
    told = f"webhooks are addressed under {base}/api/, reset links to {base}{RESET_PATH}?token=..."
    if parts.scheme == "http":
        return Finding(
            name, NOTE, f"{told}; plain http: cookies are not Secure and HSTS is off (use https via a proxy)"
        )
    return Finding(name, OK, told)


def _well_formed(url: str) -> bool:
    try:
        parts = urlsplit(url)
        port = parts.port  # ValueError when out of range or not a number
    except ValueError:
        return False
    return (
        parts.scheme in ("http", "https")
        and bool(parts.hostname)
        and port != 0
        and parts.username is None
        and not parts.query
        and not parts.fragment
    )
