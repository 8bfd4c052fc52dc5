"""Running as the data directory's owner: a command started as root (`sudo telentir-box
admin ...` beside a systemd service) on a data directory another user owns becomes that
user before touching anything, so it never leaves a root-owned file the box cannot open."""

from __future__ import annotations

import importlib
import os
import pwd
from pathlib import Path

# Code that commands load on demand (Litestar loads its pydantic plugin when the app is
# built): loaded while still root, since the installed Python may live where the owner
# cannot read (a pyenv under /root). The root test runs every command this way.
_PRELOAD = (
    "telentir_box.app",
    "telentir_box.server",
    "telentir_box.doctor",
    "uvloop",
    "concurrent.futures.thread",
    "litestar.plugins.pydantic",
)


def become_data_dir_owner(data_dir: Path) -> str | None:
    """As root, on an existing data directory owned by another user, switch to that user
    (supplementary groups, group, then user: the order the kernel allows); returns a line
    saying so, or None when nothing changed."""
    if os.geteuid() != 0:
        return None
    try:
        uid = data_dir.stat().st_uid
    except OSError:
        return None
    if uid == 0:
        return None
    for module in _PRELOAD:
        importlib.import_module(module)
    try:
        account = pwd.getpwuid(uid)
    except KeyError:
        name, gid = str(uid), data_dir.stat().st_gid
        os.setgroups([gid])
    else:
        name, gid = account.pw_name, account.pw_gid
        os.initgroups(name, gid)
    os.setgid(gid)
    os.setuid(uid)
    return f"running as {name} (uid {uid}), the owner of {data_dir}"
