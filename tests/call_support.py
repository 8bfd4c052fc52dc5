"""What the call tests share: a user as the Telentir client is one (its API key, its
store keys, a number bought), the session call it places (JWT and envelope as
telentir-wire.md 2.5-2.6 make them), the fake Twilio's status callbacks that finish a
call, and the user's event stream replayed."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Any

import httpx

from tests.call_fakes import FakeTwilioCalls, PlacedCall
from tests.conftest import replay_events
from tests.store_client import StoreClient
from tests.telephony_support import Caller, agent
from tests.test_personas import envelope, sign

VOICE = "elevenlabs-21m00Tcm4TlvDq8ikWAM"
CONTACT = {"id": "contact-1", "name": "Bob Buyer", "phone": "+15557654321", "tags": [], "status": "lead"}


@dataclass
class User:
    caller: Caller
    store: StoreClient
    number: str = ""
    number_id: str = ""

    def jwt(self, payload: Any, *, server: str = "default", lifetime: int = 600, **claims: Any) -> str:
        now = int(time.time())
        data = envelope(self.store.remote[self.store.current], payload)
        return sign(self.store.private[server], {"data": data, "iat": now, "exp": now + lifetime, **claims})

    def call(self, token: str, server: str = "default") -> httpx.Response:
        return self.caller.request("POST", "/session/call", json={"jwt": token, "server": server})

    def calls(self) -> list[dict[str, Any]]:
        return self.store.all("calls")

    def child(self, object_id: str) -> Any:
        return self.store.open(self.store.call("GET", f"/objects/{object_id}"))


def prompt_payload(**changes: Any) -> dict[str, Any]:
    return {
        "type": "prompt",
        "prompt": "Offer a demo of the product.",
        "contact": CONTACT,
        "agent": agent(persona=VOICE),
        "humanAgents": [],
        **changes,
    }


def give_the_team_a_plan(env: dict[str, str], email: str, plan: str = "starter") -> None:
    """Calls are placed only while a plan or the balance covers them."""
    set_plan = [sys.executable, "-m", "telentir_box", "admin", "set-plan", email, plan]
    subprocess.run(set_plan, env={**os.environ, **env}, capture_output=True, check=True, timeout=60)


def make_user(
    http: httpx.Client,
    env: dict[str, str],
    email: str,
    *flags: str,
    password: str | None = None,
    buy: bool = True,
) -> User:
    """A user made by `admin create-user` (with `flags`), its store connected and, with
    `buy`, a number bought."""
    caller = Caller.new(http, env, email, *flags, password=password)
    store = StoreClient(http, caller.key)
    store.connect()
    user = User(caller, store)
    if buy:
        user.number_id = caller.buy()
        user.number = caller.ok("GET", f"/phone-numbers/{user.number_id}")["phone_number"]
    return user


def read_events(user: User, channel: str, query: str, count: int) -> list[dict[str, Any]]:
    return replay_events(user.caller.http, user.caller.key, channel, query, count)


def place(user: User, twilio: FakeTwilioCalls, **payload: Any) -> tuple[dict[str, Any], PlacedCall]:
    response = user.call(user.jwt(prompt_payload(**payload)))
    assert response.status_code == 201, response.text
    return response.json(), twilio.placed[-1]


def finish_call(twilio: FakeTwilioCalls, call: PlacedCall, seconds: int = 30, **answered: str) -> None:
    """Twilio's status callbacks of an answered call lasting `seconds`; `answered` goes
    with the ones sent once it was answered (AnsweredBy, as answering-machine detection
    reports it)."""
    for sequence, status in enumerate(["initiated", "ringing"]):
        assert twilio.status(call, status, sequence).status_code == 204
    assert twilio.status(call, "in-progress", 2, **answered).status_code == 204
    assert twilio.status(call, "completed", 3, CallDuration=str(seconds), **answered).status_code == 204
