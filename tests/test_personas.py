"""Personas over the app with local ElevenLabs and OpenAI servers: the catalog in the
client's Persona shape (cached, a failing provider leaving the other half listed), and
previews whose JWT is signed the way the real client signs it and whose answer opens
with the client's own decrypt; every refusal asks no provider anything."""

from __future__ import annotations

import base64
import hmac
import json
import secrets
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from litestar.testing import TestClient

from telentir_box.app import create_app
from telentir_box.config import MASK, ConfigError, load_config, masked
from telentir_box.telephony.personas import SAMPLE_CACHE_BYTES, SampleCache
from tests.conftest import LiveServer, create_user
from tests.store_client import OAEP, StoreClient
from tests.voice_fakes import OPENAI_VOICES, FakeElevenLabs, FakeOpenAI, audio_for

RACHEL = "21m00Tcm4TlvDq8ikWAM"
GEORGE = "JBFqnCBsd6RMkjVDRZzb"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def envelope(public: rsa.RSAPublicKey, value: Any) -> str:
    """server-crypto's encryptBase64 (telentir-wire.md 2.5), the JWT's `data` claim."""
    aes, iv = AESGCM.generate_key(256), secrets.token_bytes(12)
    out = AESGCM(aes).encrypt(iv, json.dumps(value).encode(), None)
    parts = [public.encrypt(aes, OAEP), iv, out[:-16], out[-16:]]
    inner = dict(
        zip(("key", "iv", "content", "authTag"), (base64.b64encode(p).decode() for p in parts), strict=True)
    )
    return base64.b64encode(json.dumps(inner).encode()).decode()


def sign(private: rsa.RSAPrivateKey, claims: dict[str, Any], header: dict[str, Any] | None = None) -> str:
    """An RS256 JWT as jose (the browser client) builds it: header {"alg":"RS256"}, no kid."""
    signing_input = ".".join(
        b64url(json.dumps(part, separators=(",", ":")).encode())
        for part in (header or {"alg": "RS256"}, claims)
    )
    signature = private.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
    return f"{signing_input}.{b64url(signature)}"


def open_chunk(private: rsa.RSAPrivateKey, chunk: dict[str, Any]) -> bytes:
    """The client's decryptContext + Server.decrypt: standard base64 everywhere, the
    AES key unwrapped with RSA-OAEP-SHA256, AES-256-GCM with the tag apart."""
    assert set(chunk) == {"header", "content"}
    assert set(chunk["header"]) == {"key", "iv"} and set(chunk["content"]) == {"authTag", "content"}
    key, iv = (base64.b64decode(chunk["header"][k], validate=True) for k in ("key", "iv"))
    tag, content = (base64.b64decode(chunk["content"][k], validate=True) for k in ("authTag", "content"))
    return AESGCM(private.decrypt(key, OAEP)).decrypt(iv, content + tag, None)


@dataclass
class User:
    client: StoreClient

    @property
    def headers(self) -> dict[str, str]:
        return self.client.headers

    def private(self, server: str = "default") -> rsa.RSAPrivateKey:
        return self.client.private[server]

    def jwt(self, server: str = "default", **claims: Any) -> str:
        now = int(time.time())
        data = envelope(self.client.remote[self.client.current], {"purpose": "persona preview"})
        return sign(self.private(server), {"data": data, "iat": now, "exp": now + 600, **claims})


def box_env(tmp_path_factory: pytest.TempPathFactory, **settings: str) -> dict[str, str]:
    data_dir: Path = tmp_path_factory.mktemp("personas") / "data"
    env = {"TELENTIR_BOX_DATA__DIR": str(data_dir), "TELENTIR_BOX_LOG__FORMAT": "text"}
    return env | {f"TELENTIR_BOX_{name.upper()}": value for name, value in settings.items()}


def make_user(app: TestClient, env: dict[str, str], email: str) -> User:
    client = StoreClient(app, create_user(env, email, "--phone-verified", "--api-key", "k")["api_key"])
    client.connect()
    return User(client)


@pytest.fixture(scope="module")
def elevenlabs() -> Iterator[FakeElevenLabs]:
    with FakeElevenLabs() as fake:
        yield fake


@pytest.fixture(scope="module")
def openai() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as fake:
        yield fake


@pytest.fixture(scope="module")
def persona_env(
    tmp_path_factory: pytest.TempPathFactory, elevenlabs: FakeElevenLabs, openai: FakeOpenAI
) -> dict[str, str]:
    return box_env(
        tmp_path_factory,
        elevenlabs__api_key=elevenlabs.api_key,
        elevenlabs__api_base=elevenlabs.url,
        openai__api_key=openai.api_key,
        openai__api_base=openai.url + "/",
    )


@pytest.fixture(scope="module")
def app(persona_env: dict[str, str]) -> Iterator[TestClient]:
    with TestClient(create_app(load_config(environ=persona_env))) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def alice(app: TestClient, persona_env: dict[str, str]) -> User:
    return make_user(app, persona_env, "alice@example.com")


def add_server(user: User, name: str) -> None:
    """Register a server as BYOK clients do: the keypair made here, its public key uploaded."""
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = private.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    user.client.call("POST", "/servers", {"name": name, "mode": "upload_public", "publicKey": b64url(public)})
    user.client.private[name] = private


@pytest.fixture(scope="module")
def bob(app: TestClient, persona_env: dict[str, str]) -> User:
    """Bob has a second server, `bobonly`, whose private key he holds."""
    user = make_user(app, persona_env, "bob@example.com")
    add_server(user, "bobonly")
    return user


def play(app: TestClient, user: User, persona_id: str, body: Any) -> tuple[int, Any]:
    response = app.post(f"/api/persona/{persona_id}/play", json=body, headers=user.headers)
    return response.status_code, response.json()


def test_personas_list_is_both_catalogs_in_the_client_shape(
    app: TestClient, alice: User, elevenlabs: FakeElevenLabs
) -> None:
    response = app.get("/api/persona/list-external", headers=alice.headers)
    assert response.status_code == 200, response.text
    personas = {persona["id"]: persona for persona in response.json()}
    assert len(personas) == 2 + 13
    assert personas[f"elevenlabs-{RACHEL}"] == {
        "id": f"elevenlabs-{RACHEL}",
        "name": "Rachel",
        "countryEmoji": "🇺🇸",
        "gender": "female",
        "description": "",
        "rating": 0,
        "tags": ["elevenlabs", "premade", "american", "young"],
        "avatarUrl": "",
        "settings": {
            "type": "elevenlabs",
            "voiceId": RACHEL,
            "previewUrl": f"https://storage.example/{RACHEL}/preview.mp3",
        },
    }
    assert personas["openai-coral"] == {
        "id": "openai-coral",
        "name": "Coral",
        "countryEmoji": "🌐",
        "gender": "female",
        "description": "Warm and friendly",
        "rating": 0,
        "tags": ["openai", "multilingual"],
        "avatarUrl": "",
        "settings": {
            "type": "openai",
            "voice": "coral",
            "instructions": ["Speak naturally and warmly, at a relaxed pace, as on a phone call."],
        },
    }
    assert personas[f"elevenlabs-{GEORGE}"]["countryEmoji"] == "🇬🇧"
    voice_lists = [r for r in elevenlabs.requests if r.path == "/v1/voices"]
    assert voice_lists and all(r.method == "GET" for r in voice_lists)
    assert all(r.headers["xi-api-key"] == elevenlabs.api_key for r in voice_lists)


def test_personas_list_within_its_lifetime_asks_elevenlabs_nothing(
    app: TestClient, alice: User, elevenlabs: FakeElevenLabs
) -> None:
    assert app.get("/api/persona/list-external", headers=alice.headers).status_code == 200
    asked = len(elevenlabs.requests)
    for _ in range(3):
        assert len(app.get("/api/persona/list-external", headers=alice.headers).json()) == 15
    assert app.get(f"/api/persona/elevenlabs-{GEORGE}", headers=alice.headers).status_code == 200
    assert len(elevenlabs.requests) == asked


def test_personas_get_one_or_404(app: TestClient, alice: User) -> None:
    got = app.get(f"/api/persona/elevenlabs-{GEORGE}", headers=alice.headers)
    assert got.status_code == 200 and got.json()["settings"]["voiceId"] == GEORGE
    assert app.get("/api/persona/openai-onyx", headers=alice.headers).json()["gender"] == "male"
    for unknown in ("elevenlabs-nobody", "openai-robot", "bogus", "list-external-not"):
        response = app.get(f"/api/persona/{unknown}", headers=alice.headers)
        assert response.status_code == 404 and response.json()["code"] == "NOT_FOUND", unknown


def test_personas_play_elevenlabs_opens_with_the_clients_decrypt(
    app: TestClient, alice: User, elevenlabs: FakeElevenLabs
) -> None:
    before = len(elevenlabs.tts_requests())
    status, chunk = play(app, alice, f"elevenlabs-{RACHEL}", {"server": "default", "jwt": alice.jwt()})
    assert status == 200, chunk
    [spoken] = elevenlabs.tts_requests()[before:]
    assert spoken.method == "POST" and spoken.headers["xi-api-key"] == elevenlabs.api_key
    assert spoken.path == f"/v1/text-to-speech/{RACHEL}?output_format=mp3_44100_128"
    body = spoken.json()
    assert body["model_id"] == "eleven_flash_v2_5" and "Rachel" in body["text"]
    assert open_chunk(alice.private(), chunk) == audio_for(RACHEL, body["text"])


def test_personas_play_openai_with_a_jsonwebtoken_jwt_and_any_case_server(
    app: TestClient, alice: User, openai: FakeOpenAI
) -> None:
    now = int(time.time())
    # NodeCrypto signs with jsonwebtoken: header {"alg":"RS256","typ":"JWT"}.
    token = jwt.encode({"data": "e30=", "iat": now, "exp": now + 600}, alice.private(), algorithm="RS256")
    assert jwt.get_unverified_header(token) == {"alg": "RS256", "typ": "JWT"}
    before = len(openai.requests)
    status, chunk = play(app, alice, "openai-sage", {"server": "Default", "jwt": token})
    assert status == 200, chunk
    [spoken] = openai.requests[before:]
    assert spoken.path == "/v1/audio/speech" and spoken.headers["authorization"] == f"Bearer {openai.api_key}"
    body = spoken.json()
    assert body == {
        "model": "gpt-4o-mini-tts",
        "input": body["input"],
        "voice": "sage",
        "response_format": "mp3",
        "instructions": "Speak naturally and warmly, at a relaxed pace, as on a phone call.",
    }
    assert "Sage" in body["input"]
    assert open_chunk(alice.private(), chunk) == audio_for("sage", body["input"])
    # Played again within the catalog's lifetime: the same audio, under a fresh key and
    # IV, and no new request to OpenAI.
    status, again = play(app, alice, "openai-sage", {"server": "default", "jwt": alice.jwt()})
    assert status == 200 and open_chunk(alice.private(), again) == open_chunk(alice.private(), chunk)
    assert again["header"] != chunk["header"] and again["content"] != chunk["content"]
    assert len(openai.requests) == before + 1


def hs256_with_public_key(user: User) -> str:
    """The classic confusion: the server's public key used as an HMAC secret."""
    public = (
        user.private()
        .public_key()
        .public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    now = int(time.time())
    header, claims = {"alg": "HS256", "typ": "JWT"}, {"iat": now, "exp": now + 600}
    signing_input = ".".join(b64url(json.dumps(part).encode()) for part in (header, claims))
    mac = hmac.new(b64url(public).encode(), signing_input.encode(), "sha256").digest()
    return f"{signing_input}.{b64url(mac)}"


def unsigned(claims: dict[str, Any]) -> str:
    return f"{b64url(json.dumps({'alg': 'none'}).encode())}.{b64url(json.dumps(claims).encode())}."


def refused_request(case: str, alice: User, bob: User) -> tuple[str, str]:
    """The (server, jwt) Alice sends in each refused case."""
    now = int(time.time())
    fresh = {"iat": now, "exp": now + 600}
    if case == "wrong-key":
        return "default", sign(rsa.generate_private_key(public_exponent=65537, key_size=2048), fresh)
    if case == "signed-by-another-user":
        return "default", bob.jwt()
    if case == "expired":
        return "default", alice.jwt(iat=now - 1300, exp=now - 700)
    if case == "alg-none":
        return "default", unsigned(fresh)
    if case == "hs256":
        return "default", hs256_with_public_key(alice)
    if case == "no-exp":
        return "default", sign(alice.private(), {"iat": now})
    if case == "nan-exp":
        return "default", sign(alice.private(), {"iat": now, "exp": float("nan")})
    if case == "iat-in-future":
        return "default", alice.jwt(iat=now + 3600, exp=now + 4000)
    if case == "lives-too-long":
        return "default", alice.jwt(exp=now + 86_400)
    if case == "garbage":
        return "default", "not.a.jwt"
    if case == "other-users-server":
        return "bobonly", bob.jwt("bobonly")
    if case == "unknown-server":
        return "nope", alice.jwt()
    assert case == "platform-server"
    return "box", alice.jwt()


@pytest.mark.parametrize(
    ("case", "status", "code"),
    [
        *[
            (case, 401, "JWT_INVALID")
            for case in (
                "wrong-key",
                "signed-by-another-user",
                "alg-none",
                "hs256",
                "no-exp",
                "nan-exp",
                "iat-in-future",
                "lives-too-long",
                "garbage",
            )
        ],
        ("expired", 401, "JWT_EXPIRED"),
        ("other-users-server", 404, "NOT_FOUND"),
        ("unknown-server", 404, "NOT_FOUND"),
        ("platform-server", 404, "NOT_FOUND"),
    ],
)
def test_personas_play_refuses_and_asks_no_provider(
    app: TestClient,
    alice: User,
    bob: User,
    elevenlabs: FakeElevenLabs,
    openai: FakeOpenAI,
    case: str,
    status: int,
    code: str,
) -> None:
    server, token = refused_request(case, alice, bob)
    asked = len(elevenlabs.requests) + len(openai.requests)
    for persona_id in (f"elevenlabs-{RACHEL}", "openai-alloy"):
        got, body = play(app, alice, persona_id, {"server": server, "jwt": token})
        assert (got, body["code"]) == (status, code), body
        assert body["message"] == body["error"]
    assert len(elevenlabs.requests) + len(openai.requests) == asked


def test_personas_play_for_a_deprecated_server_is_refused(
    app: TestClient, bob: User, elevenlabs: FakeElevenLabs, openai: FakeOpenAI
) -> None:
    add_server(bob, "retired")
    bob.client.call("PATCH", "/servers/retired", {"deprecated": True})
    asked = len(elevenlabs.requests) + len(openai.requests)
    status, body = play(app, bob, "openai-ash", {"server": "retired", "jwt": bob.jwt("retired")})
    assert (status, body["code"]) == (400, "VALIDATION_ERROR") and "deprecated" in body["message"]
    assert len(elevenlabs.requests) + len(openai.requests) == asked


def test_personas_play_unknown_persona_is_404_without_speaking(
    app: TestClient, alice: User, elevenlabs: FakeElevenLabs, openai: FakeOpenAI
) -> None:
    spoken = len(elevenlabs.tts_requests()) + len(openai.requests)
    for unknown in ("elevenlabs-nobody", "openai-robot", "azure-jenny"):
        status, body = play(app, alice, unknown, {"server": "default", "jwt": alice.jwt()})
        assert (status, body["code"]) == (404, "NOT_FOUND"), unknown
    assert len(elevenlabs.tts_requests()) + len(openai.requests) == spoken


def test_personas_need_a_credential(app: TestClient) -> None:
    for method, path in (
        ("GET", "/api/persona/list-external"),
        ("GET", "/api/persona/openai-alloy"),
        ("POST", "/api/persona/openai-alloy/play"),
    ):
        response = app.request(
            method, path, json={"server": "default", "jwt": "x"} if method == "POST" else None
        )
        assert (response.status_code, response.json()["code"]) == (401, "UNAUTHORIZED"), path


@pytest.mark.parametrize(
    ("body", "status"),
    [
        pytest.param(b"{not json", 400, id="malformed"),
        pytest.param({"server": "default"}, 400, id="missing-jwt"),
        pytest.param({"server": "default", "jwt": "x", "extra": 1}, 400, id="unknown-field"),
        pytest.param({"server": 7, "jwt": "x"}, 400, id="wrong-type"),
        pytest.param({"server": "", "jwt": "x"}, 400, id="empty-server"),
        pytest.param({"server": "default", "jwt": "x" * 70_000}, 400, id="oversized-jwt"),
        pytest.param({"server": "default", "jwt": "x" * 1_100_000}, 413, id="oversized-body"),
        pytest.param([], 400, id="not-an-object"),
    ],
)
def test_personas_play_refuses_bad_bodies(
    app: TestClient,
    alice: User,
    elevenlabs: FakeElevenLabs,
    openai: FakeOpenAI,
    body: Any,
    status: int,
) -> None:
    asked = len(elevenlabs.requests) + len(openai.requests)
    if isinstance(body, bytes):
        headers = {**alice.headers, "content-type": "application/json"}
        response = app.post("/api/persona/openai-alloy/play", content=body, headers=headers)
    else:
        response = app.post("/api/persona/openai-alloy/play", json=body, headers=alice.headers)
    assert response.status_code == status, response.text
    answer = response.json()
    assert set(answer) == {"error", "code", "message"}
    assert answer["code"] == ("VALIDATION_ERROR" if status == 400 else "PAYLOAD_TOO_LARGE")
    assert len(elevenlabs.requests) + len(openai.requests) == asked


def test_personas_elevenlabs_down_leaves_openai_listed_and_is_not_asked_again_at_once(
    tmp_path_factory: pytest.TempPathFactory, openai: FakeOpenAI, caplog: pytest.LogCaptureFixture
) -> None:
    with FakeElevenLabs(down=True) as flaky:
        env = box_env(
            tmp_path_factory,
            elevenlabs__api_key=flaky.api_key,
            elevenlabs__api_base=flaky.url,
            openai__api_key=openai.api_key,
            openai__api_base=openai.url,
        )
        with TestClient(create_app(load_config(environ=env))) as app:
            carol = make_user(app, env, "carol@example.com")
            for _ in range(2):
                listed = app.get("/api/persona/list-external", headers=carol.headers)
                assert listed.status_code == 200
                assert {p["id"] for p in listed.json()} == {f"openai-{voice}" for voice in OPENAI_VOICES}
            got = app.get(f"/api/persona/elevenlabs-{RACHEL}", headers=carol.headers)
            assert (got.status_code, got.json()["code"]) == (502, "UPSTREAM_ERROR")
            status, chunk = play(app, carol, "openai-echo", {"server": "default", "jwt": carol.jwt()})
            assert status == 200 and open_chunk(carol.private(), chunk).startswith(b"\xff\xfb")
        assert [r.path for r in flaky.requests] == ["/v1/voices"]
    assert "ElevenLabs voices not fetched" in caplog.text


def test_personas_elevenlabs_down_serves_the_last_list(
    tmp_path_factory: pytest.TempPathFactory, openai: FakeOpenAI
) -> None:
    with FakeElevenLabs() as flaky:
        env = box_env(
            tmp_path_factory,
            elevenlabs__api_key=flaky.api_key,
            elevenlabs__api_base=flaky.url,
            personas__cache_seconds="0",
        )
        with TestClient(create_app(load_config(environ=env))) as app:
            frank = make_user(app, env, "frank@example.com")
            before = app.get("/api/persona/list-external", headers=frank.headers).json()
            assert len(before) == 2
            flaky.down = True
            assert app.get("/api/persona/list-external", headers=frank.headers).json() == before
            assert app.get(f"/api/persona/elevenlabs-{GEORGE}", headers=frank.headers).status_code == 200
            status, body = play(app, frank, f"elevenlabs-{GEORGE}", {"server": "default", "jwt": frank.jwt()})
            assert (status, body["code"]) == (502, "UPSTREAM_ERROR")
        # cache_seconds = 0: every read asked again, then the preview's speech.
        assert [r.path.partition("?")[0] for r in flaky.requests] == [
            "/v1/voices",
            "/v1/voices",
            "/v1/voices",
            "/v1/voices",
            f"/v1/text-to-speech/{GEORGE}",
        ]


def test_personas_unconfigured_providers(tmp_path_factory: pytest.TempPathFactory) -> None:
    env = box_env(tmp_path_factory)
    with TestClient(create_app(load_config(environ=env))) as app:
        dave = make_user(app, env, "dave@example.com")
        listed = app.get("/api/persona/list-external", headers=dave.headers)
        assert (listed.status_code, listed.json()) == (200, [])
        assert app.get("/api/persona/openai-alloy", headers=dave.headers).status_code == 404
        for persona_id, code in (
            (f"elevenlabs-{RACHEL}", "ELEVENLABS_NOT_CONFIGURED"),
            ("openai-alloy", "OPENAI_NOT_CONFIGURED"),
        ):
            status, body = play(app, dave, persona_id, {"server": "default", "jwt": dave.jwt()})
            assert (status, body["code"]) == (503, code)
        assert app.get("/api/health").status_code == 200


def test_personas_config_masks_api_keys_and_checks_its_values() -> None:
    shown = masked(
        load_config(
            environ={
                "TELENTIR_BOX_ELEVENLABS__API_KEY": "xi-hidden-1",
                "TELENTIR_BOX_OPENAI__API_KEY": "sk-hidden-2",
            }
        )
    )
    assert shown["elevenlabs"]["api_key"] == MASK and shown["openai"]["api_key"] == MASK
    assert "hidden" not in json.dumps(shown)
    assert shown["elevenlabs"]["api_base"] == "https://api.elevenlabs.io"
    for name, value in (
        ("TELENTIR_BOX_PERSONAS__CACHE_SECONDS", "-1"),
        ("TELENTIR_BOX_PERSONAS__CACHE_SECONDS", "100000"),
        ("TELENTIR_BOX_ELEVENLABS__API_BASE", "api.elevenlabs.io"),
        ("TELENTIR_BOX_OPENAI__API_BASE", "ftp://api.openai.com"),
    ):
        with pytest.raises(ConfigError):
            load_config(environ={name: value})


def test_personas_routes_are_in_the_openapi_schema(app: TestClient) -> None:
    schema = app.get("/api/schema/openapi.json").json()
    paths = schema["paths"]
    listed = paths["/api/persona/list-external"]["get"]
    assert listed["tags"] == ["personas"] and listed["summary"]
    assert paths["/api/persona/{persona_id}"]["get"]["summary"]
    played = paths["/api/persona/{persona_id}/play"]["post"]
    assert played["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith("/PlayBody")
    assert played["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/EncryptedChunk"
    )
    assert set(schema["components"]["schemas"]["Persona"]["required"]) == {
        "id",
        "name",
        "countryEmoji",
        "gender",
        "description",
        "rating",
        "tags",
        "avatarUrl",
        "settings",
    }


@pytest.mark.e2e
def test_personas_live_list_and_play_on_the_real_server(
    live_server_factory: Callable[..., LiveServer],
    user_factory: Callable[..., dict[str, str]],
    elevenlabs: FakeElevenLabs,
    openai: FakeOpenAI,
) -> None:
    server = live_server_factory(
        TELENTIR_BOX_ELEVENLABS__API_KEY=elevenlabs.api_key,
        TELENTIR_BOX_ELEVENLABS__API_BASE=elevenlabs.url,
        TELENTIR_BOX_OPENAI__API_KEY=openai.api_key,
        TELENTIR_BOX_OPENAI__API_BASE=openai.url,
    )
    with server.client() as http:
        client = StoreClient(http, user_factory()["api_key"])
        client.connect()
        erin = User(client)
        listed = http.get("/api/persona/list-external", headers=erin.headers)
        assert listed.status_code == 200 and len(listed.json()) == 15
        for persona_id in (f"elevenlabs-{GEORGE}", "openai-verse"):
            response = http.post(
                f"/api/persona/{persona_id}/play",
                json={"server": "default", "jwt": erin.jwt()},
                headers=erin.headers,
            )
            assert response.status_code == 200, response.text
            assert open_chunk(erin.private(), response.json()).startswith(b"\xff\xfb")


def test_personas_sample_cache_keeps_within_its_budget_oldest_out_first() -> None:
    quarter = SAMPLE_CACHE_BYTES // 4
    cache = SampleCache(3600)
    for n in range(5):
        cache.put((f"openai-{n}", "text"), bytes([n]) * quarter)
    assert cache.get(("openai-0", "text")) is None
    assert [cache.get((f"openai-{n}", "text")) == bytes([n]) * quarter for n in range(1, 5)] == [True] * 4
    cache.put(("openai-big", "text"), bytes(quarter + 1))
    assert cache.get(("openai-big", "text")) is None
    unkept = SampleCache(0)
    unkept.put(("openai-alloy", "text"), b"audio")
    assert unkept.get(("openai-alloy", "text")) is None
