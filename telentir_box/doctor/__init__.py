"""`telentir-box doctor`: whether this box is healthy and, if not, why. Each check is a
function returning a Finding; nothing creates or changes anything in the data
directory, and a running server is left alone (the database is opened read-only)."""

from __future__ import annotations

import asyncio
import os
import resource

from telentir_box.config import Config
from telentir_box.doctor.process import check_holder, process_file_limits
from telentir_box.doctor.providers import check_providers
from telentir_box.doctor.report import Finding, format_report, has_problem
from telentir_box.doctor.settings import check_file_limit, check_public_url
from telentir_box.doctor.storage import check_data_dir, check_database, check_disk

__all__ = ["Finding", "format_report", "has_problem", "run_checks"]


def run_checks(config: Config, *, online: bool = False) -> list[Finding]:
    """Every check, in the order an operator would fix them."""
    return asyncio.run(_run_checks(config, online))


async def _run_checks(config: Config, online: bool) -> list[Finding]:
    data_dir = config.data_dir
    findings = [check_data_dir(data_dir, os.geteuid())]
    findings += await check_database(data_dir)
    findings.append(check_disk(data_dir))
    holder, pid = check_holder(data_dir)
    findings.append(holder)
    server_limits = process_file_limits(pid) if pid else None
    if server_limits is not None:
        findings.append(check_file_limit(config, server_limits, f"pid {pid}"))
    else:
        own_limits = resource.getrlimit(resource.RLIMIT_NOFILE)
        findings.append(check_file_limit(config, own_limits, "this process"))
    findings.append(check_public_url(config.server))
    findings += await check_providers(config, online=online)
    return findings
