"""A real local HTTP server playing Twilio's number APIs (AvailablePhoneNumbers, Pricing
v1, IncomingPhoneNumbers, Addresses) in the shapes providers.md section 1 records, and
helpers the telephony tests share: starting the box against it, and the calls the
Telentir client makes."""

from __future__ import annotations

import base64
import json
import re
import secrets
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx

from tests.conftest import LiveServer, create_user
from tests.connect_fakes import Recorded, _FakeService, _Server

ACCOUNT_SID = "AC" + "a1" * 16
AUTH_TOKEN = "twilio-test-token"
PUBLIC_URL = "https://box.example.com"
ACCOUNT = f"/2010-04-01/Accounts/{ACCOUNT_SID}"
_TYPES = {"Local.json": "local", "TollFree.json": "toll_free", "Mobile.json": "mobile"}
# Country -> (name, the types it sells, its prefix for numbers, Pricing v1 entries).
COUNTRIES: dict[str, tuple[str, list[str], str, list[tuple[str, str]]]] = {
    "US": (
        "United States",
        ["local", "toll_free", "mobile"],
        "+1555",
        [("local", "1.15"), ("toll free", "2.15")],
    ),
    "GB": (
        "United Kingdom",
        ["local", "mobile", "national"],
        "+447700",
        [("local", "1.00"), ("mobile", "1.50")],
    ),
}


def twilio_error(status: int, code: int, message: str) -> dict[str, Any]:
    return {
        "code": code,
        "message": message,
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }


@dataclass
class FakeTwilio(_FakeService):
    """Twilio as far as the box's number calls go. Numbers on offer are the same for a
    country and type until bought (as at Twilio, a bought number is no longer offered)."""

    server: _Server | None = None
    owned: dict[str, str] = field(default_factory=dict)  # sid -> phone number
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def calls(self, method: str, pattern: str) -> list[Recorded]:
        return [r for r in self.requests if r.method == method and re.search(pattern, urlsplit(r.path).path)]

    def _handle(self, handler: BaseHTTPRequestHandler, request: Recorded) -> None:
        expected = "Basic " + base64.b64encode(f"{ACCOUNT_SID}:{AUTH_TOKEN}".encode()).decode()
        if request.headers.get("authorization") != expected:
            self._send(handler, 401, twilio_error(401, 20003, "Authenticate"))
            return
        path = urlsplit(request.path).path
        status, payload = self._route(request.method, path, request)
        self._send(handler, status, payload)

    def _route(self, method: str, path: str, request: Recorded) -> tuple[int, Any]:
        if method == "GET" and path == f"{ACCOUNT}/AvailablePhoneNumbers.json":
            return 200, self._countries()
        if method == "GET" and (
            m := re.fullmatch(rf"{ACCOUNT}/AvailablePhoneNumbers/([A-Z]{{2}})/(\w+\.json)", path)
        ):
            return self._available(m[1], _TYPES.get(m[2], ""))
        if method == "GET" and (m := re.fullmatch(r"/v1/PhoneNumbers/Countries/([A-Z]{2})", path)):
            return self._pricing(m[1])
        if method == "POST" and path == f"{ACCOUNT}/IncomingPhoneNumbers.json":
            return self._buy(request.form())
        if method == "DELETE" and (m := re.fullmatch(rf"{ACCOUNT}/IncomingPhoneNumbers/(PN\w+)\.json", path)):
            with self._lock:
                return (
                    (204, None)
                    if self.owned.pop(m[1], None)
                    else (404, twilio_error(404, 20404, "Not found"))
                )
        if method == "POST" and path == f"{ACCOUNT}/Addresses.json":
            return self._address(request.form())
        return 404, twilio_error(404, 20404, f"The requested resource {path} was not found")

    def _countries(self) -> dict[str, Any]:
        countries = [
            {
                "country_code": code,
                "country": name,
                "beta": False,
                "subresource_uris": {t: f"{ACCOUNT}/AvailablePhoneNumbers/{code}/{t}.json" for t in types},
            }
            for code, (name, types, _, _) in COUNTRIES.items()
        ]
        return {"countries": countries, "uri": f"{ACCOUNT}/AvailablePhoneNumbers.json"}

    def _available(self, country: str, number_type: str) -> tuple[int, Any]:
        if country not in COUNTRIES or number_type not in COUNTRIES[country][1]:
            return 404, twilio_error(404, 20404, "The requested resource was not found")
        prefix = COUNTRIES[country][2] + str(["local", "toll_free", "mobile"].index(number_type))
        with self._lock:
            owned = set(self.owned.values())
        numbers = [f"{prefix}{n:05d}" for n in range(100) if f"{prefix}{n:05d}" not in owned][:3]
        available = [
            {
                "friendly_name": f"({number[-7:-4]}) {number[-4:]}",
                "phone_number": number,
                "locality": "Springfield",
                "region": "IL",
                "iso_country": country,
                "latitude": "39.781700",
                "longitude": "-89.650100",
                "address_requirements": "none",
                "beta": False,
                "capabilities": {"voice": True, "SMS": True, "MMS": False},
            }
            for number in numbers
        ]
        return 200, {"available_phone_numbers": available, "uri": "/x", "next_page_uri": None}

    def _pricing(self, country: str) -> tuple[int, Any]:
        if country not in COUNTRIES:
            return 404, twilio_error(404, 20404, "Not found")
        prices = [{"number_type": t, "base_price": p, "current_price": p} for t, p in COUNTRIES[country][3]]
        return 200, {
            "country": COUNTRIES[country][0],
            "iso_country": country,
            "price_unit": "USD",
            "phone_number_prices": prices,
            "url": f"https://pricing.twilio.com/v1/PhoneNumbers/Countries/{country}",
        }

    def _buy(self, form: dict[str, str]) -> tuple[int, Any]:
        number = form.get("PhoneNumber", "")
        with self._lock:
            if not number or number in self.owned.values():
                return 400, twilio_error(400, 21422, "Phone number is not available")
            sid = "PN" + secrets.token_hex(16)
            self.owned[sid] = number
        capabilities = {"voice": True, "sms": True, "mms": False, "fax": False}
        return 201, {
            "sid": sid,
            "phone_number": number,
            "friendly_name": number,
            "capabilities": capabilities,
        }

    @staticmethod
    def _address(form: dict[str, str]) -> tuple[int, Any]:
        required = ("CustomerName", "Street", "City", "Region", "PostalCode", "IsoCountry")
        if any(not form.get(name) for name in required):
            return 400, twilio_error(400, 21620, "Missing required parameter")
        return 201, {"sid": "AD" + secrets.token_hex(16), "validated": False, "verified": False}

    @staticmethod
    def _send(handler: BaseHTTPRequestHandler, status: int, payload: Any) -> None:
        body = b"" if payload is None else json.dumps(payload).encode()
        handler.send_response(status)
        if body:
            handler.send_header("content-type", "application/json")
        handler.send_header("content-length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)


def assert_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """The one error format, with the status and code expected."""
    assert response.status_code == status, response.text
    body = response.json()
    assert body["code"] == code, body
    assert body["error"] == body["message"] and body["error"]
    return body


def form_of(request: Recorded) -> dict[str, list[str]]:
    return parse_qs(request.body.decode(), keep_blank_values=True)


def box_env(data_dir: Path, twilio: FakeTwilio | None, **extra: str) -> dict[str, str]:
    env = {
        "TELENTIR_BOX_DATA__DIR": str(data_dir),
        "TELENTIR_BOX_LOG__FORMAT": "text",
        "TELENTIR_BOX_SERVER__PUBLIC_URL": PUBLIC_URL,
        **extra,
    }
    if twilio is not None:
        env |= {
            "TELENTIR_BOX_TWILIO__ACCOUNT_SID": ACCOUNT_SID,
            "TELENTIR_BOX_TWILIO__AUTH_TOKEN": AUTH_TOKEN,
            "TELENTIR_BOX_TWILIO__API_BASE": twilio.url,
        }
    return env


@contextmanager
def running_box(env: dict[str, str], log_path: Path) -> Iterator[LiveServer]:
    server = LiveServer(env=env, log_path=log_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@dataclass
class Caller:
    """One user calling the box as the Telentir client's HttpClient does."""

    http: httpx.Client
    key: str
    user_id: str

    @classmethod
    def new(
        cls, http: httpx.Client, env: dict[str, str], email: str, *flags: str, password: str | None = None
    ) -> Caller:
        user = create_user(env, email, "--phone-verified", "--api-key", "test", *flags, password=password)
        return cls(http, user["api_key"], user["id"])

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {"authorization": f"Bearer {self.key}", "accept": "application/json"}
        headers |= kwargs.pop("headers", {})
        return self.http.request(method, "/api" + path, headers=headers, **kwargs)

    def ok(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.request(method, path, **kwargs)
        assert 200 <= response.status_code < 300, (response.status_code, response.text)
        return response.json() if response.content else None

    def search(self, country: str = "US", number_type: str = "local") -> list[dict[str, Any]]:
        return self.ok(
            "GET", "/phone-numbers/search/twilio", params={"country": country, "type": number_type}
        )

    def buy(self, country: str = "US", number_type: str = "local", **body: Any) -> str:
        quote = self.search(country, number_type)[0]["price"]["jwt"]
        number_id = self.ok("PUT", "/phone-numbers", json={"jwt": quote, **body})
        assert isinstance(number_id, str)
        return number_id


def agent(kind: str = "ai", **extra: Any) -> dict[str, Any]:
    """An Agent as the client's agents store holds it, plus its id."""
    base = {
        "id": secrets.token_hex(8),
        "avatar": "",
        "firstName": "Ada",
        "lastName": "Lovelace",
        "language": "en",
    }
    typed = (
        {"type": "ai", "persona": "openai-verse"}
        if kind == "ai"
        else {"type": "human", "phoneNumber": "+15550001111"}
    )
    return {**base, **typed, **extra}


def configuration_body(**extra: Any) -> dict[str, Any]:
    return {
        "name": "Front desk",
        "agent": agent(),
        "source": {"type": "prompt", "prompt": {"text": "Greet the caller and take a message."}},
        "humanAgents": [],
        **extra,
    }
