"""End to end over the real `telentir-box serve` with a local Twilio: the client's flow
(search, quote, buy, attach, list), the price quote (RS256 under the platform key, bound
to user and number, single use, short-lived), addresses, number records, release at
Twilio, route ordering, and the routes without Twilio."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from telentir_box.config import ConfigError, TwilioConfig, load_config
from telentir_box.errors import UpstreamFailed
from telentir_box.telephony.twilio_client import TwilioClient
from tests.conftest import LiveServer
from tests.telephony_support import (
    ACCOUNT,
    ACCOUNT_SID,
    PUBLIC_URL,
    Caller,
    FakeTwilio,
    assert_error,
    box_env,
    configuration_body,
    form_of,
    running_box,
)

pytestmark = pytest.mark.e2e

RECORD_KEYS = {
    "id",
    "user_id",
    "name",
    "description",
    "phone_number",
    "type",
    "reference",
    "metadata",
    "inbound_configuration_id",
    "created_at",
    "updated_at",
}
SEARCH_KEYS = {
    "name",
    "phoneNumber",
    "capabilities",
    "addressRequirements",
    "latitude",
    "longitude",
    "locality",
    "price",
}


@pytest.fixture(scope="module")
def twilio() -> Iterator[FakeTwilio]:
    with FakeTwilio() as fake:
        yield fake


@pytest.fixture(scope="module")
def server(twilio: FakeTwilio, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    root = tmp_path_factory.mktemp("numbers")
    with running_box(box_env(root / "data", twilio), root / "server.log") as live:
        yield live


@pytest.fixture(scope="module")
def http(server: LiveServer) -> Iterator[httpx.Client]:
    with server.client() as client:
        yield client


@pytest.fixture(scope="module")
def alice(http: httpx.Client, server: LiveServer) -> Caller:
    return Caller.new(http, server.env, "alice@example.com")


@pytest.fixture(scope="module")
def bob(http: httpx.Client, server: LiveServer) -> Caller:
    return Caller.new(http, server.env, "bob@example.com")


def platform_jwk(http: httpx.Client, caller: Caller) -> jwt.PyJWK:
    server = caller.ok("GET", "/server")
    return jwt.PyJWK(server["keys"][server["current"]]["application/jwk+json"])


def base64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def purchases(twilio: FakeTwilio) -> int:
    return len(twilio.calls("POST", r"/IncomingPhoneNumbers\.json$"))


def test_numbers_client_flow_search_quote_buy_attach_list(
    http: httpx.Client, alice: Caller, twilio: FakeTwilio
) -> None:
    assert alice.ok("GET", "/phone-numbers/search") == ["twilio"]
    countries = alice.ok("GET", "/phone-numbers/search/twilio/countries")
    assert {"name": "United States", "code": "US", "types": ["local", "toll_free", "mobile"]} in countries

    results = alice.search("US", "local")
    assert len(results) == 3
    offer = results[0]
    assert set(offer) == SEARCH_KEYS
    assert offer["capabilities"] == {"voice": True, "sms": True, "mms": False}
    assert offer["latitude"] == pytest.approx(39.7817) and offer["locality"] == "Springfield"
    assert offer["addressRequirements"] == "none"
    assert {k: offer["price"][k] for k in ("currency", "amount")} == {"currency": "USD", "amount": 1.15}
    search_query = twilio.calls("GET", r"/US/Local\.json$")[-1].path
    assert "VoiceEnabled=true" in search_query and "PageSize=20" in search_query

    # The quote verifies against the JWK GET /api/server publishes, bound to user, number, price.
    claims = jwt.decode(
        offer["price"]["jwt"],
        platform_jwk(http, alice),
        algorithms=["RS256"],
        audience=None,
        options={"verify_aud": False},
    )
    assert claims["sub"] == alice.user_id
    assert claims["number"]["phone_number"] == offer["phoneNumber"]
    assert (claims["number"]["currency"], claims["number"]["amount"]) == ("USD", "1.15")
    assert 0 < claims["exp"] - claims["iat"] <= 600

    number_id = alice.ok("PUT", "/phone-numbers", json={"jwt": offer["price"]["jwt"], "description": "Sales"})
    assert isinstance(number_id, str)
    bought = form_of(twilio.calls("POST", r"/IncomingPhoneNumbers\.json$")[-1])
    assert bought["PhoneNumber"] == [offer["phoneNumber"]]
    assert bought["VoiceUrl"] == [f"{PUBLIC_URL}/api/webhooks/twilio/voice"]
    assert bought["StatusCallback"] == [f"{PUBLIC_URL}/api/webhooks/twilio/status"]
    assert bought["VoiceMethod"] == ["POST"] and bought["StatusCallbackMethod"] == ["POST"]

    configuration = alice.ok("PUT", "/inbound-configurations", json=configuration_body(name="Reception"))
    attached = alice.ok(
        "POST",
        f"/inbound-configurations/{configuration['id']}",
        json={"action": "attach", "phone_number_id": number_id},
    )
    assert attached["ok"] is True
    assert attached["phone_number"]["inbound_configuration_id"] == configuration["id"]

    record = next(n for n in alice.ok("GET", "/phone-numbers") if n["id"] == number_id)
    assert set(record) == RECORD_KEYS
    assert record["phone_number"] == offer["phoneNumber"]
    assert record["type"] == "both"
    assert record["description"] == "Sales"
    assert record["user_id"] == alice.user_id
    assert record["reference"]["type"] == "twilio" and record["reference"]["sid"].startswith("PN")
    assert record["metadata"]["capabilities"] == {"voice": True, "sms": True, "mms": False}
    assert record["metadata"]["price"] == {"currency": "USD", "amount": 1.15}
    assert record["inbound_configuration_id"] == configuration["id"]
    assert alice.ok("GET", f"/phone-numbers/{number_id}") == record
    assert configuration["id"] in [c["id"] for c in alice.ok("GET", "/inbound-configurations")]


def test_numbers_countries_list_only_the_types_the_client_knows(alice: Caller) -> None:
    countries = alice.ok("GET", "/phone-numbers/search/twilio/countries")
    assert {"name": "United Kingdom", "code": "GB", "types": ["local", "mobile"]} in countries
    assert_error(alice.request("GET", "/phone-numbers/search/nexmo/countries"), 404, "NOT_FOUND")
    assert_error(
        alice.request("GET", "/phone-numbers/search/nexmo", params={"country": "US", "type": "local"}),
        404,
        "NOT_FOUND",
    )


def test_numbers_search_refuses_bad_country_and_type(alice: Caller) -> None:
    search = "/phone-numbers/search/twilio"
    assert_error(alice.request("GET", search, params={"country": "FR", "type": "local"}), 404, "NOT_FOUND")
    assert_error(
        alice.request("GET", search, params={"country": "USA", "type": "local"}), 400, "VALIDATION_ERROR"
    )
    assert_error(
        alice.request("GET", search, params={"country": "US", "type": "landline"}), 400, "VALIDATION_ERROR"
    )
    assert_error(alice.request("GET", search, params={"type": "local"}), 400, "VALIDATION_ERROR")


def test_numbers_search_without_a_price_offers_no_quote(alice: Caller) -> None:
    results = alice.search("US", "mobile")
    assert results and all(r["price"] is None for r in results)
    gb = alice.search("gb", "mobile")
    assert gb[0]["price"]["amount"] == 1.5


def test_numbers_forged_or_tampered_quotes_buy_nothing(alice: Caller, twilio: FakeTwilio) -> None:
    token = alice.search()[0]["price"]["jwt"]
    header, payload, signature = token.split(".")
    claims = jwt.decode(token, options={"verify_signature": False})
    other_number = {**claims, "number": {**claims["number"], "phone_number": "+15559999999"}}
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    kid = jwt.get_unverified_header(token)["kid"]
    forged = [
        f"{header}.{base64url(json.dumps(other_number).encode())}.{signature}",
        jwt.encode(other_number, stranger, algorithm="RS256", headers={"kid": kid}),
        jwt.encode(other_number, "s" * 32, algorithm="HS256", headers={"kid": kid}),
        f"{header}.{payload}.{signature[:-4]}AAAA",
        "not.a.jwt",
    ]
    before, owned = purchases(twilio), alice.ok("GET", "/phone-numbers")
    for bad in forged:
        assert_error(alice.request("PUT", "/phone-numbers", json={"jwt": bad}), 400, "QUOTE_INVALID")
    assert purchases(twilio) == before
    assert alice.ok("GET", "/phone-numbers") == owned


def test_numbers_quote_buys_once(alice: Caller, twilio: FakeTwilio) -> None:
    token = alice.search("GB", "local")[0]["price"]["jwt"]
    alice.ok("PUT", "/phone-numbers", json={"jwt": token})
    before = purchases(twilio)
    assert_error(alice.request("PUT", "/phone-numbers", json={"jwt": token}), 409, "QUOTE_USED")
    assert purchases(twilio) == before


def test_numbers_quote_of_another_user_is_not_found(alice: Caller, bob: Caller, twilio: FakeTwilio) -> None:
    token = alice.search("US", "toll_free")[0]["price"]["jwt"]
    before = purchases(twilio)
    assert_error(bob.request("PUT", "/phone-numbers", json={"jwt": token}), 404, "NOT_FOUND")
    assert purchases(twilio) == before
    assert bob.ok("GET", "/phone-numbers") == []
    # The refusal did not spend it: the user it was made for still buys with it.
    alice.ok("PUT", "/phone-numbers", json={"jwt": token})


def test_numbers_twilio_refusal_records_nothing(alice: Caller) -> None:
    first, second = (alice.search("US", "toll_free")[0] for _ in range(2))
    assert first["phoneNumber"] == second["phoneNumber"]
    count = len(alice.ok("GET", "/phone-numbers"))
    alice.ok("PUT", "/phone-numbers", json={"jwt": first["price"]["jwt"]})
    refused = alice.request("PUT", "/phone-numbers", json={"jwt": second["price"]["jwt"]})
    body = assert_error(refused, 400, "TWILIO_REJECTED")
    assert "21422" in body["message"] and "AC" not in body["message"]
    assert len(alice.ok("GET", "/phone-numbers")) == count + 1


def test_numbers_address_is_registered_and_owned(alice: Caller, bob: Caller, twilio: FakeTwilio) -> None:
    body = {
        "street": "1 Main St",
        "city": "Springfield",
        "region": "IL",
        "postalCode": "62701",
        "isoCountry": "us",
        "friendlyName": "HQ",
        "emergencyEnabled": False,
        "streetSecondary": "Suite 2",
    }
    sid = alice.ok("PUT", "/phone-numbers/address", json=body)
    assert isinstance(sid, str) and sid.startswith("AD")
    sent = form_of(twilio.calls("POST", r"/Addresses\.json$")[-1])
    assert sent["CustomerName"] == ["HQ"] and sent["IsoCountry"] == ["US"] and sent["PostalCode"] == ["62701"]
    assert sent["EmergencyEnabled"] == ["false"] and sent["StreetSecondary"] == ["Suite 2"]
    assert "AutoCorrectAddress" not in sent

    token = alice.search("GB", "mobile")[0]["price"]["jwt"]
    bob_token = bob.search("GB", "mobile")[0]["price"]["jwt"]
    assert_error(
        bob.request("PUT", "/phone-numbers", json={"jwt": bob_token, "addressSid": sid}), 404, "NOT_FOUND"
    )
    number_id = alice.ok("PUT", "/phone-numbers", json={"jwt": token, "addressSid": sid})
    assert form_of(twilio.calls("POST", r"/IncomingPhoneNumbers\.json$")[-1])["AddressSid"] == [sid]
    assert alice.ok("GET", f"/phone-numbers/{number_id}")["metadata"]["address_sid"] == sid

    assert_error(
        alice.request("PUT", "/phone-numbers/address", json={**body, "extra": 1}), 400, "VALIDATION_ERROR"
    )
    assert_error(alice.request("PUT", "/phone-numbers/address", json={"city": "X"}), 400, "VALIDATION_ERROR")


def test_numbers_get_update_and_release(alice: Caller, bob: Caller, twilio: FakeTwilio) -> None:
    number_id = alice.buy("US", "local", description="Old")
    path = f"/phone-numbers/{number_id}"
    renamed = alice.ok("PATCH", path, json={"name": "Support line"})
    assert (renamed["name"], renamed["description"]) == ("Support line", "Old")
    cleared = alice.ok("PATCH", path, json={"description": None})
    assert (cleared["name"], cleared["description"]) == ("Support line", None)
    assert_error(alice.request("PATCH", path, json={}), 400, "VALIDATION_ERROR")
    assert_error(alice.request("PATCH", path, json={"name": None}), 400, "VALIDATION_ERROR")
    assert_error(alice.request("PATCH", path, json={"phone_number": "+1"}), 400, "VALIDATION_ERROR")

    for method, kwargs in (("GET", {}), ("PATCH", {"json": {"name": "Mine"}}), ("DELETE", {})):
        assert_error(bob.request(method, path, **kwargs), 404, "NOT_FOUND")
    assert_error(alice.request("GET", "/phone-numbers/num_doesnotexist000000"), 404, "NOT_FOUND")

    sid = alice.ok("GET", path)["reference"]["sid"]
    assert alice.request("DELETE", path).status_code == 204
    assert twilio.calls("DELETE", rf"/IncomingPhoneNumbers/{sid}\.json$")
    assert sid not in twilio.owned
    assert_error(alice.request("GET", path), 404, "NOT_FOUND")
    assert number_id not in [n["id"] for n in alice.ok("GET", "/phone-numbers")]


def test_numbers_static_routes_win_over_the_id_route(alice: Caller) -> None:
    assert alice.ok("GET", "/phone-numbers/search") == ["twilio"]
    response = alice.request("PUT", "/phone-numbers/address", json={})
    body = assert_error(response, 400, "VALIDATION_ERROR")
    assert "street" in body["message"]


def test_numbers_refuse_callers_without_credentials(http: httpx.Client) -> None:
    for method, path in (
        ("GET", "/api/phone-numbers"),
        ("PUT", "/api/phone-numbers"),
        ("PUT", "/api/phone-numbers/address"),
        ("GET", "/api/phone-numbers/search"),
        ("GET", "/api/phone-numbers/search/twilio/countries"),
        ("GET", "/api/phone-numbers/search/twilio?country=US&type=local"),
        ("GET", "/api/phone-numbers/num_x"),
        ("PATCH", "/api/phone-numbers/num_x"),
        ("DELETE", "/api/phone-numbers/num_x"),
    ):
        assert_error(
            http.request(method, path, json={} if method in ("PUT", "PATCH") else None), 401, "UNAUTHORIZED"
        )


def test_numbers_refuse_malformed_and_oversized_bodies(alice: Caller, twilio: FakeTwilio) -> None:
    path_of_any = "/phone-numbers/num_doesnotexist000000"
    before = purchases(twilio)
    headers = {"content-type": "application/json"}
    assert_error(
        alice.request("PUT", "/phone-numbers", content=b"{not json", headers=headers), 400, "VALIDATION_ERROR"
    )
    assert_error(alice.request("PUT", "/phone-numbers", json={"jwt": 5}), 400, "VALIDATION_ERROR")
    assert_error(alice.request("PUT", "/phone-numbers", json={"jwt": "x" * 9000}), 400, "VALIDATION_ERROR")
    assert_error(
        alice.request("PUT", "/phone-numbers", json={"jwt": "a.b.c", "addressSid": "nope"}),
        400,
        "VALIDATION_ERROR",
    )
    oversized = {"jwt": "a.b.c", "description": "x" * 2_000_000}
    for method, path in (
        ("PUT", "/phone-numbers"),
        ("PUT", "/phone-numbers/address"),
        ("PATCH", path_of_any),
    ):
        assert_error(alice.request(method, path, json=oversized), 413, "PAYLOAD_TOO_LARGE")
    assert purchases(twilio) == before


def test_numbers_expired_quote_is_refused(twilio: FakeTwilio, tmp_path: Path) -> None:
    env = box_env(tmp_path / "data", twilio, TELENTIR_BOX_TWILIO__QUOTE_TTL_SECONDS="1")
    with running_box(env, tmp_path / "server.log") as live, live.client() as http:
        carol = Caller.new(http, env, "carol@example.com")
        token = carol.search("GB", "local")[0]["price"]["jwt"]
        time.sleep(1.1)
        before = purchases(twilio)
        assert_error(carol.request("PUT", "/phone-numbers", json={"jwt": token}), 400, "QUOTE_EXPIRED")
        assert purchases(twilio) == before


def test_numbers_without_twilio_keep_records_and_inbound_working(
    twilio: FakeTwilio, live_server_factory: Callable[..., LiveServer], tmp_path: Path
) -> None:
    env = box_env(tmp_path / "data", twilio)
    configured = live_server_factory(**env)
    with configured.client() as http:
        dave = Caller.new(http, env, "dave@example.com")
        number_id = dave.buy("US", "local")
    configured.stop()

    unconfigured = live_server_factory(
        **{**env, "TELENTIR_BOX_TWILIO__ACCOUNT_SID": "", "TELENTIR_BOX_TWILIO__AUTH_TOKEN": ""}
    )
    with unconfigured.client() as http:
        dave.http = http
        token = "a.b.c"
        for method, path, body in (
            ("GET", "/phone-numbers/search/twilio/countries", None),
            ("GET", "/phone-numbers/search/twilio?country=US&type=local", None),
            ("PUT", "/phone-numbers", {"jwt": token}),
            (
                "PUT",
                "/phone-numbers/address",
                {"street": "1", "city": "c", "region": "r", "postalCode": "1", "isoCountry": "US"},
            ),
            ("DELETE", f"/phone-numbers/{number_id}", None),
        ):
            assert_error(dave.request(method, path, json=body), 503, "TWILIO_NOT_CONFIGURED")
        assert dave.ok("GET", "/phone-numbers/search") == []
        assert [n["id"] for n in dave.ok("GET", "/phone-numbers")] == [number_id]
        assert dave.ok("PATCH", f"/phone-numbers/{number_id}", json={"name": "Kept"})["name"] == "Kept"
        configuration = dave.ok("PUT", "/inbound-configurations", json=configuration_body())
        attached = dave.ok(
            "POST",
            f"/inbound-configurations/{configuration['id']}",
            json={"action": "attach", "phone_number_id": number_id},
        )
        assert attached["phone_number"]["inbound_configuration_id"] == configuration["id"]
        assert dave.request("DELETE", f"/inbound-configurations/{configuration['id']}").status_code == 204
    assert twilio.calls("GET", rf"{ACCOUNT}/AvailablePhoneNumbers\.json$")


@pytest.mark.parametrize("ttl", ["0", "3601", "-5"])
def test_numbers_quote_lifetime_is_minutes_not_hours(ttl: str) -> None:
    with pytest.raises(ConfigError, match="quote_ttl_seconds"):
        load_config(environ={"TELENTIR_BOX_TWILIO__QUOTE_TTL_SECONDS": ttl})


def test_numbers_concurrent_purchases_with_one_quote_buy_once(alice: Caller, twilio: FakeTwilio) -> None:
    token = alice.search("US", "local")[0]["price"]["jwt"]
    before = purchases(twilio)
    with ThreadPoolExecutor(max_workers=4) as pool:
        statuses = sorted(
            pool.map(
                lambda _: alice.request("PUT", "/phone-numbers", json={"jwt": token}).status_code, range(4)
            )
        )
    assert statuses == [200, 409, 409, 409]
    assert purchases(twilio) == before + 1


async def test_numbers_twilio_refusing_the_box_credentials_is_an_upstream_failure(twilio: FakeTwilio) -> None:
    config = TwilioConfig(account_sid=ACCOUNT_SID, auth_token="wrong", api_base=twilio.url)
    async with httpx.AsyncClient() as client:
        with pytest.raises(UpstreamFailed, match="credentials"):
            await TwilioClient(config, client).list_countries()


def test_numbers_and_inbound_routes_are_in_the_openapi_schema(http: httpx.Client) -> None:
    paths = http.get("/api/schema/openapi.json").json()["paths"]
    expected = {
        "/api/phone-numbers": {"get", "put"},
        "/api/phone-numbers/address": {"put"},
        "/api/phone-numbers/search": {"get"},
        "/api/phone-numbers/search/{provider}": {"get"},
        "/api/phone-numbers/search/{provider}/countries": {"get"},
        "/api/phone-numbers/{number_id}": {"get", "patch", "delete"},
        "/api/inbound-configurations": {"get", "put"},
        "/api/inbound-configurations/{config_id}": {"get", "put", "patch", "post", "delete"},
    }
    for path, methods in expected.items():
        assert methods <= set(paths[path]), path
        assert all(paths[path][m]["summary"] for m in methods)
