"""`telentir-box demo-telephony`: with the box pointed at the local stand-ins, a session
call and a simulated inbound call run through every webhook to finished calls with a
transcript and a recording in the calls store."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from telentir_box.voice.demo import DemoTelephony
from tests.call_fakes import AGENT_ID, WEBHOOK_SECRET
from tests.call_support import User, give_the_team_a_plan, prompt_payload
from tests.conftest import LiveServer, free_port
from tests.store_client import StoreClient
from tests.telephony_support import ACCOUNT_SID, AUTH_TOKEN, PUBLIC_URL, Caller, agent, configuration_body

VOICE = "elevenlabs-demoVoice01"


@pytest.fixture(scope="module")
def demo() -> Iterator[DemoTelephony]:
    telephony = DemoTelephony(
        box_url="",
        public_url=PUBLIC_URL,
        auth_token=AUTH_TOKEN,
        webhook_secret=WEBHOOK_SECRET,
        step_seconds=0.05,
    )
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(telephony, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    telephony.url = f"http://127.0.0.1:{port}"  # type: ignore[attr-defined]
    yield telephony
    server.should_exit = True
    thread.join(5)


@pytest.fixture(scope="module")
def box(tmp_path_factory: pytest.TempPathFactory, demo: DemoTelephony) -> Iterator[LiveServer]:
    root: Path = tmp_path_factory.mktemp("demo")
    base = demo.url  # type: ignore[attr-defined]
    env = {
        "TELENTIR_BOX_DATA__DIR": str(root / "data"),
        "TELENTIR_BOX_LOG__FORMAT": "text",
        "TELENTIR_BOX_SERVER__PUBLIC_URL": PUBLIC_URL,
        "TELENTIR_BOX_TWILIO__ACCOUNT_SID": ACCOUNT_SID,
        "TELENTIR_BOX_TWILIO__AUTH_TOKEN": AUTH_TOKEN,
        "TELENTIR_BOX_TWILIO__API_BASE": base,
        "TELENTIR_BOX_ELEVENLABS__API_KEY": "xi-demo",
        "TELENTIR_BOX_ELEVENLABS__API_BASE": base,
        "TELENTIR_BOX_ELEVENLABS__AGENT_ID": AGENT_ID,
        "TELENTIR_BOX_ELEVENLABS__WEBHOOK_SECRET": WEBHOOK_SECRET,
    }
    live = LiveServer(env=env, log_path=root / "server.log")
    live.start()
    demo.box_url = live.base_url
    try:
        yield live
    finally:
        live.stop()


def final_call(user: User, direction: str) -> dict[str, Any]:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        done = [c for c in user.calls() if c["direction"] == direction and c["status"] != "ongoing"]
        if done:
            return done[0]
        time.sleep(0.1)
    raise AssertionError(f"no final {direction} call")


def test_demo_telephony_runs_outbound_and_inbound_calls_to_the_end(
    box: LiveServer, demo: DemoTelephony
) -> None:
    with httpx.Client(base_url=box.base_url, timeout=30) as http:
        caller = Caller.new(http, box.env, "demo@example.com")
        give_the_team_a_plan(box.env, "demo@example.com")
        store = StoreClient(http, caller.key)
        store.connect()
        user = User(caller, store)
        number_id = caller.buy()
        number = caller.ok("GET", f"/phone-numbers/{number_id}")["phone_number"]

        assert user.call(user.jwt(prompt_payload(agent=agent(persona=VOICE)))).status_code == 201
        outbound = final_call(user, "outbound")
        assert outbound["status"] == "completed" and outbound["notes"] == "The caller asked for a callback."
        transcript = user.child(outbound["relations"]["transcription"])
        assert transcript["transcript"][0]["message"] == "Hello! This is the demo agent."
        audio = user.child(outbound["relations"]["audio"])
        assert audio["source"] == "elevenlabs" and audio["content"]

        config_id = caller.ok(
            "PUT", "/inbound-configurations", json=configuration_body(agent=agent(persona=VOICE))
        )["id"]
        caller.ok(
            "POST",
            f"/inbound-configurations/{config_id}",
            json={"action": "attach", "phone_number_id": number_id},
        )
        started = httpx.post(demo.url + "/demo/inbound", json={"from": "+15550004321", "to": number})  # type: ignore[attr-defined]
        assert started.status_code == 202
        inbound = final_call(user, "inbound")
        assert inbound["status"] == "completed" and inbound["contact"] == {"phone": "+15550004321"}
        assert set(inbound["relations"]) == {"transcription", "audio"}


def test_demo_telephony_command_says_how_to_point_the_box_at_it(tmp_path: Path) -> None:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "telentir_box", "demo-telephony", "--port", str(port)],
        stdout=subprocess.PIPE,
        env={"TELENTIR_BOX_DATA__DIR": str(tmp_path / "data"), "PATH": "/usr/bin:/bin"},
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline().decode()
        assert f'api_base = "http://127.0.0.1:{port}"' in line
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    break
            except OSError:
                time.sleep(0.05)
        assert httpx.get(f"http://127.0.0.1:{port}/health").json() == {"status": "ok"}
    finally:
        process.terminate()
        process.wait(10)
