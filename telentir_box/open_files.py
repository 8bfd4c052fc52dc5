"""The process's open-file limit: every connection and event stream holds a file
descriptor, so the soft limit is raised to the hard one at start and the settings
that open sockets are checked against what it carries."""

from __future__ import annotations

import resource

from telentir_box.config import Config, ConfigError

# The files the box holds besides client connections: the listening socket, standard
# streams, the data directory lock, outbound HTTP clients and the event loop's own.
RESERVED_FILES = 64
# An SQLite connection in WAL mode holds the database, its -wal and its -shm files.
FILES_PER_DB_CONNECTION = 3
# Linux refuses an unlimited RLIMIT_NOFILE; this is its default ceiling (fs.nr_open).
UNLIMITED_CEILING = 1_048_576


def raise_open_file_limit() -> int:
    """Raise the soft open-file limit to the hard one; the soft limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = UNLIMITED_CEILING if hard == resource.RLIM_INFINITY else hard
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass  # a container may forbid it: the check below says what that means
    return UNLIMITED_CEILING if soft == resource.RLIM_INFINITY else soft


def files_needed(config: Config) -> int:
    """Descriptors the box needs to hold [events] max_streams streams open."""
    return config.events.max_streams + _files_besides_connections(config)


def _files_besides_connections(config: Config) -> int:
    return RESERVED_FILES + (config.database.read_pool_size + 1) * FILES_PER_DB_CONNECTION


def connection_cap(config: Config, open_files: int) -> int:
    """How many connections the box holds open: `max_connections`, lowered to what
    `open_files` carries. A limit too low for `max_streams` is a ConfigError."""
    carried = open_files - _files_besides_connections(config)
    streams = config.events.max_streams
    if streams > carried:
        needed = files_needed(config)
        raise ConfigError(
            f"events.max_streams = {streams} needs an open-file limit of at least {needed}, "
            f"this process may open {open_files}: raise LimitNOFILE (ulimit -n) or lower max_streams"
        )
    return min(config.server.max_connections, carried)
