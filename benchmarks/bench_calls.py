"""Calls on the real `telentir-box serve`, with `telentir_box.voice.demo` standing in for
Twilio and ElevenLabs (answering at once, on loopback):
- 1,000 Twilio status callbacks in one burst (250 calls x 4 statuses, sent all at once
  and so partly out of order): every call must end folded, target p99 under 200 ms;
  baseline: 1,000 GET /api/health in the same kind of burst;
- the box's own time in the voice webhook (register-call answered at once) and in the
  personalization webhook: target p99 under 50 ms each;
- one 20 MB post_call_audio: the server's peak resident memory growth, target under
  3x the audio size."""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import hmac
import json
import os
import secrets
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from loadgen import RawConnection, create_api_key, encode_request, free_port, running_server
from twilio.request_validator import RequestValidator

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from telentir_box.voice.demo import DemoTelephony

PUBLIC_URL = "https://box.example.com"
ACCOUNT_SID = "AC" + "b2" * 16
AUTH_TOKEN = "bench-twilio-token"  # noqa: S105 - a stand-in's credential
WEBHOOK_SECRET = "wsec_bench"  # noqa: S105
PERSONALIZE_SECRET = "bench-personalize"  # noqa: S105
OAEP = padding.OAEP(mgf=padding.MGF1(algorithm=hashes.SHA256()), algorithm=hashes.SHA256(), label=None)


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def session_jwt(private: rsa.RSAPrivateKey, platform: rsa.RSAPublicKey, payload: Any) -> str:
    """telentir-wire.md 2.5-2.6: the payload sealed for the box, in an RS256 JWT."""
    aes, iv = AESGCM.generate_key(256), secrets.token_bytes(12)
    out = AESGCM(aes).encrypt(iv, json.dumps(payload).encode(), None)
    parts = [platform.encrypt(aes, OAEP), iv, out[:-16], out[-16:]]
    inner = dict(
        zip(("key", "iv", "content", "authTag"), (base64.b64encode(p).decode() for p in parts), strict=True)
    )
    now = int(time.time())
    claims = {"data": base64.b64encode(json.dumps(inner).encode()).decode(), "iat": now, "exp": now + 600}
    signing_input = ".".join(b64url(json.dumps(p).encode()) for p in ({"alg": "RS256"}, claims))
    signature = private.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
    return f"{signing_input}.{b64url(signature)}"


def start_demo() -> tuple[DemoTelephony, str]:
    demo = DemoTelephony(
        box_url="",
        public_url=PUBLIC_URL,
        auth_token=AUTH_TOKEN,
        webhook_secret=WEBHOOK_SECRET,
        step_seconds=3600,
    )
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(demo, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.02)
    return demo, f"http://127.0.0.1:{port}"


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] * 1000


def peak_rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


async def raw_burst(
    base_url: str, requests: list[httpx.Request], connections: int
) -> list[tuple[float, int]]:
    """All `requests` at once over `connections` keep-alive connections (as a sender
    with a connection pool would), each timed from its send to its answer."""
    url = httpx.URL(base_url)
    payloads = [encode_request(r) for r in requests]
    opened = [await RawConnection.open(url.host, url.port or 80) for _ in range(connections)]
    results: list[tuple[float, int]] = []

    async def run(connection: RawConnection, share: list[bytes]) -> None:
        for payload in share:
            started = time.perf_counter()
            status = await connection.exchange(payload)
            results.append((time.perf_counter() - started, status))

    await asyncio.gather(*(run(c, payloads[i::connections]) for i, c in enumerate(opened)))
    for connection in opened:
        connection.close()
    return results


async def timed(http: httpx.AsyncClient, method: str, url: str, **kwargs: Any) -> tuple[float, int]:
    started = time.perf_counter()
    response = await http.request(method, url, **kwargs)
    return time.perf_counter() - started, response.status_code


def twilio_post(url: str, base_url: str, params: dict[str, str]) -> dict[str, Any]:
    signature = RequestValidator(AUTH_TOKEN).compute_signature(url, params)
    return {
        "url": base_url + url[len(PUBLIC_URL) :],
        "data": params,
        "headers": {"x-twilio-signature": signature},
    }


def el_post(base_url: str, payload: dict[str, Any]) -> dict[str, Any]:
    body = json.dumps(payload).encode()
    stamp = int(time.time())
    mac = hmac.new(WEBHOOK_SECRET.encode(), f"{stamp}.".encode() + body, hashlib.sha256).hexdigest()
    headers = {"content-type": "application/json", "elevenlabs-signature": f"t={stamp},v0={mac}"}
    return {"url": base_url + "/api/webhooks/elevenlabs", "content": body, "headers": headers}


async def bench(calls: int, audio_mb: int, connections: int) -> None:
    demo, demo_url = start_demo()
    env = {
        "TELENTIR_BOX_SERVER__PUBLIC_URL": PUBLIC_URL,
        "TELENTIR_BOX_TWILIO__ACCOUNT_SID": ACCOUNT_SID,
        "TELENTIR_BOX_TWILIO__AUTH_TOKEN": AUTH_TOKEN,
        "TELENTIR_BOX_TWILIO__API_BASE": demo_url,
        "TELENTIR_BOX_ELEVENLABS__API_KEY": "xi-bench",
        "TELENTIR_BOX_ELEVENLABS__API_BASE": demo_url,
        "TELENTIR_BOX_ELEVENLABS__AGENT_ID": "agent_bench",
        "TELENTIR_BOX_ELEVENLABS__WEBHOOK_SECRET": WEBHOOK_SECRET,
        "TELENTIR_BOX_ELEVENLABS__PERSONALIZE_SECRET": PERSONALIZE_SECRET,
        "TELENTIR_BOX_CALLS__MAX_CONCURRENT_PER_USER": str(calls + 10),
        "TELENTIR_BOX_CALLS__MAX_CONCURRENT": str(calls + 10),
        "TELENTIR_BOX_SERVER__MAX_BODY_BYTES": "1048576",
    }
    with running_server(env) as server:
        demo.box_url = server.base_url
        key = create_api_key(server.data_dir)
        auth = {"authorization": f"Bearer {key}"}
        async with httpx.AsyncClient(base_url=server.base_url, timeout=120, trust_env=False) as http:
            platform_view = (await http.get("/api/server", headers=auth)).json()
            current = platform_view["keys"][platform_view["current"]]["application/pkix-spki"]
            platform = serialization.load_der_public_key(b64url_decode(current))
            root = (await http.get("/api/root", headers=auth)).json()
            private = serialization.load_der_private_key(
                b64url_decode(root["servers"]["default"]["privateKey"]), None
            )
            quote = (
                await http.get("/api/phone-numbers/search/twilio?country=US&type=local", headers=auth)
            ).json()
            await http.put("/api/phone-numbers", json={"jwt": quote[0]["price"]["jwt"]}, headers=auth)
            agent = {"id": "a1", "type": "ai", "persona": "elevenlabs-demoVoice01", "avatar": "",
                     "firstName": "Ada", "lastName": "L", "language": "en"}  # fmt: skip
            placed: list[dict[str, Any]] = []
            for n in range(calls):
                payload = {"type": "prompt", "prompt": "Hello", "agent": agent, "humanAgents": [],
                           "contact": {"name": f"C{n}", "phone": f"+1555700{n:04d}"}}  # fmt: skip
                token = session_jwt(private, platform, payload)  # type: ignore[arg-type]
                response = await http.post(
                    "/api/session/call", json={"jwt": token, "server": "default"}, headers=auth
                )
                assert response.status_code == 201, response.text
                placed.append(response.json())
            base = server.base_url

            health = await raw_burst(
                base, [httpx.Request("GET", base + "/api/health") for _ in range(calls * 4)], connections
            )
            posts = []
            for call in placed:
                url = f"{PUBLIC_URL}/api/webhooks/twilio/status?call={call['id']}"
                for sequence, status in enumerate(["initiated", "ringing", "in-progress", "completed"]):
                    params = {
                        "CallSid": call["callSid"],
                        "CallStatus": status,
                        "SequenceNumber": str(sequence),
                        "CallDuration": "5",
                    }
                    posts.append(twilio_post(url, base, params))
            burst = await raw_burst(base, [httpx.Request("POST", **p) for p in posts], connections)
            assert all(status == 204 for _, status in burst)

            voice_times, personalize_times = [], []
            for call in placed[:200]:
                url = f"{PUBLIC_URL}/api/webhooks/twilio/voice?call={call['id']}"
                params = {"CallSid": call["callSid"], "CallStatus": "in-progress", "From": "+1", "To": "+1"}
                voice_times.append((await timed(http, "POST", **twilio_post(url, base, params)))[0])
                body = {"call_sid": call["callSid"], "caller_id": "+1", "called_number": "+1"}
                headers = {"x-webhook-secret": PERSONALIZE_SECRET}
                personalize_times.append(
                    (
                        await timed(
                            http, "POST", "/api/webhooks/elevenlabs/personalize", json=body, headers=headers
                        )
                    )[0]
                )

            target = placed[-1]
            conversation = "conv_bench"
            metadata = {"phone_call": {"call_sid": target["callSid"]}}
            data = {"conversation_id": conversation, "transcript": [], "metadata": metadata}
            transcription = {"type": "post_call_transcription", "data": data}
            await http.post(**el_post(base, transcription))
            audio = os.urandom(audio_mb * 1024 * 1024)
            data = {"conversation_id": conversation, "full_audio": base64.b64encode(audio).decode()}
            payload = {"type": "post_call_audio", "data": data}
            request = el_post(base, payload)
            del payload
            before = peak_rss_kib(server.pid)
            _, status = await timed(http, "POST", **request)
            after = peak_rss_kib(server.pid)
            assert status == 200

    def row(name: str, values: list[float], target: str) -> None:
        print(
            f"{name:<40} p50 {percentile(values, 0.5):8.1f} ms"
            f"  p99 {percentile(values, 0.99):8.1f} ms  {target}"
        )

    row(f"{len(burst)} status callbacks, one burst", [t for t, _ in burst], "target p99 < 200 ms")
    row(f"baseline: {len(health)} GET /api/health burst", [t for t, _ in health], "")
    row("voice webhook (provider instant)", voice_times, "target p99 < 50 ms")
    row("personalization webhook", personalize_times, "target p99 < 50 ms")
    growth = max(0, after - before) * 1024
    print(
        f"{audio_mb} MB post_call_audio: peak RSS growth {growth / 2**20:.1f} MB"
        f" = {growth / len(audio):.2f}x the audio (target < 3x)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=250, help="calls placed (4 status callbacks each)")
    parser.add_argument("--audio-mb", type=int, default=20)
    parser.add_argument("--connections", type=int, default=50, help="connections the burst is sent over")
    args = parser.parse_args()
    asyncio.run(bench(args.calls, args.audio_mb, args.connections))


if __name__ == "__main__":
    main()
