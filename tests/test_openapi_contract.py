"""The OpenAPI schema against the real server: schemathesis, with every one of its
checks, sends a bounded number of generated requests to each operation (as an owner
with a verified phone, by API key) and fails on a server error, an answer that does
not match its schema, an undocumented status, a valid request refused, or an `Allow`
that does not list exactly the path's methods. The two event streams never end, so
they are left out."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.billing_fakes import WEBHOOK_SECRET, FakeStripeBilling
from tests.conftest import LiveServer, create_user
from tests.connect_fakes import FakeConnector, lead_frames
from tests.telephony_support import ACCOUNT_SID, AUTH_TOKEN, PUBLIC_URL, FakeTwilio
from tests.voice_fakes import FakeElevenLabs, FakeOpenAI

pytestmark = pytest.mark.e2e

# Where the schema cannot say what the server checks, a 400 is an honest answer to a
# request the schema allows. Each entry names the rule that needs it.
STATE_OR_CRYPTO_RULES = {
    # `confirmPassword` must equal `password`; `currentPassword` must be the current one.
    "/api/auth/register": ["POST"],
    "/api/auth/password": ["POST"],
    "/api/auth/password/reset": ["POST"],
    # A code is right or wrong only for this account's enrolment, and 2fa/authenticate
    # only for a session waiting for its second factor.
    "/api/auth/2fa/authenticate": ["POST"],
    "/api/auth/2fa/confirm": ["POST"],
    "/api/auth/2fa/reset": ["POST"],
    "/api/auth/2fa/recovery-codes": ["POST"],
    "/api/auth/phone/verify": ["POST"],
    # A wrap must be the server key's size and decrypt; hex and base64 forms go with
    # the spelling of the other fields; a public key must be a usable RSA key.
    "/api/keys": ["POST", "PUT"],
    "/api/keys/{key_id}": ["PATCH"],
    "/api/objects": ["POST", "PUT"],
    "/api/objects/{object_id}": ["PATCH"],
    "/api/servers": ["POST"],
    # The published object must be one the box can decrypt with its own key.
    "/api/objects/publish/{type}/{related_id}": ["PUT"],
    # `params.credits` is a whole number when the path is /get-leads.
    "/api/connect": ["POST"],
    # A purchase needs a quote the box signed; a preview a JWT signed by the caller's server.
    "/api/phone-numbers": ["PUT"],
    "/api/persona/{persona_id}/play": ["POST"],
    # Only the box's own origin and the dashboard origins are return addresses.
    "/api/billing/portal": ["GET"],
    "/api/billing/plan": ["POST"],
    "/api/credits/add": ["POST"],
    # A session call carries a JWT signed by the caller's server and a payload sealed for the box.
    "/api/session/call": ["POST"],
    # A Stripe event is what Stripe signed; an upload is what its bytes are (415 otherwise).
    "/api/webhooks/stripe": ["POST"],
    "/api/knowledge-bases/{base_id}": ["POST"],
    # Connecting answers the browser with a redirect, and so does the provider's callback
    # whatever it carries (its outcome is in the dashboard URL).
    "/api/integrations/{provider}/connect": ["GET"],
    "/api/integrations/{provider}/callback": ["GET"],
    # Twilio decides which countries, types and addresses it accepts.
    "/api/phone-numbers/address": ["PUT"],
    "/api/phone-numbers/search/{provider}": ["GET"],
}
# Litestar converts request bodies leniently (0 or "false" for a boolean, "5" for an
# integer), so these answer 200 to such a body, which the schema rightly forbids.
LENIENT_SCALARS = {
    "/api/auth/login": ["POST"],
    "/api/auth/register": ["POST"],
    "/api/servers/{name}": ["PATCH"],
    "/api/keys/{key_id}": ["PATCH"],
    "/api/credits/grants": ["POST"],
    "/api/phone-numbers/address": ["PUT"],
}
ACCEPTED_ALSO_400 = ["2xx", "302", "400", "401", "403", "404", "409", "415", "429"]
# Every integration registered, so connecting one builds its authorization URL (no
# provider is called before the browser comes back).
INTEGRATIONS = {
    f"TELENTIR_BOX_INTEGRATIONS__{provider.upper()}__{key}": "contract"
    for provider in ("google_calendar", "hubspot", "salesforce", "microsoft_teams")
    for key in ("CLIENT_ID", "CLIENT_SECRET")
} | {"TELENTIR_BOX_INTEGRATIONS__MICROSOFT_TEAMS__CHAT_ID": "chat-contract"}
# Every plan priced at Stripe, so a checkout runs whole.
PLANS = "".join(
    f"[billing.plans.{key}]\n"
    f'name = "{key}"\nstripe_price = "price_{key}"\nmonthly_price_usd = 49\noverage_usd_per_minute = 0.1\n'
    "included_minutes = 10\nincluded_leads = 5\nincluded_outbound_calls = 2\nincluded_inbound_calls = 2\n"
    "outbound_fixed_usd = 0.05\ninbound_fixed_usd = 0.03\nlead_overage_usd_per_lead = 0.1\n"
    for key in ("starter", "pro", "growth", "agency")
)


def schemathesis_config(decoy_key_id: str) -> str:
    lines = [
        # Every check; those an operation below sets aside are named with the reason.
        # (Not `--checks all`: a check named on the command line overrides this file.)
        "checks.enabled = true",
        "",
        "[generation]",
        "max-examples = 8",
        "",
        # A generated header block may pass the box's header limits (431, before any route).
        "[checks.negative_data_rejection]",
        "expected-statuses = [400, 401, 403, 404, 405, 406, 409, 413, 415, 422, 428, 429, 431]",
        "",
        # The run must not revoke the key it authenticates with: its DELETE gets a decoy.
        "[[operations]]",
        "include-path = '/api/api-keys/{key_id}'",
        "include-method = 'DELETE'",
        f"parameters = {{ 'path.key_id' = '{decoy_key_id}' }}",
        "",
    ]
    for path in sorted(STATE_OR_CRYPTO_RULES.keys() | LENIENT_SCALARS.keys()):
        methods = sorted(set(STATE_OR_CRYPTO_RULES.get(path, [])) | set(LENIENT_SCALARS.get(path, [])))
        lines += ["[[operations]]", f"include-path = {path!r}", f"include-method = {methods!r}"]
        if path in STATE_OR_CRYPTO_RULES:
            lines.append(f"checks.positive_data_acceptance.expected-statuses = {ACCEPTED_ALSO_400!r}")
        if path in LENIENT_SCALARS:
            lines.append("checks.negative_data_rejection.enabled = false")
        lines.append("")
    return "\n".join(lines)


def test_schemathesis_finds_no_contract_failure(
    live_server_factory: Callable[..., LiveServer], env: dict[str, str], tmp_path: Path
) -> None:
    # Local servers in every provider's place, so each route runs whole: a connector that
    # streams two leads to any request, Twilio, ElevenLabs, OpenAI and Stripe.
    with (
        FakeConnector(frames=lambda params: lead_frames(2)) as connector,
        FakeTwilio() as twilio,
        FakeElevenLabs() as elevenlabs,
        FakeOpenAI() as openai,
        FakeStripeBilling() as stripe,
    ):
        config = tmp_path / "config.toml"
        config.write_text(PLANS)
        server = live_server_factory(
            TELENTIR_BOX_CONFIG=str(config),
            # The run sends thousands of requests with one key: its budget is not the test.
            TELENTIR_BOX_RATELIMIT__REQUESTS_PER_MINUTE="1000000",
            **INTEGRATIONS,
            TELENTIR_BOX_BILLING__STRIPE_SECRET_KEY="sk_test_contract",
            TELENTIR_BOX_BILLING__STRIPE_API_BASE=stripe.url,
            TELENTIR_BOX_BILLING__STRIPE_WEBHOOK_SECRET=WEBHOOK_SECRET,
            TELENTIR_BOX_CONNECT__BASE_URL=connector.url,
            TELENTIR_BOX_BILLING__LEAD_ALLOWANCE="20",
            TELENTIR_BOX_SERVER__PUBLIC_URL=PUBLIC_URL,
            TELENTIR_BOX_TWILIO__ACCOUNT_SID=ACCOUNT_SID,
            TELENTIR_BOX_TWILIO__AUTH_TOKEN=AUTH_TOKEN,
            TELENTIR_BOX_TWILIO__API_BASE=twilio.url,
            TELENTIR_BOX_ELEVENLABS__API_KEY=elevenlabs.api_key,
            TELENTIR_BOX_ELEVENLABS__API_BASE=elevenlabs.url,
            TELENTIR_BOX_ELEVENLABS__AGENT_ID="agent_contract",
            TELENTIR_BOX_ELEVENLABS__WEBHOOK_SECRET="wsec_contract",
            TELENTIR_BOX_ELEVENLABS__PERSONALIZE_SECRET="psec_contract",
            TELENTIR_BOX_OPENAI__API_KEY=openai.api_key,
            TELENTIR_BOX_OPENAI__API_BASE=openai.url,
        )
        run_schemathesis(server, env, tmp_path)


def run_schemathesis(server: LiveServer, env: dict[str, str], tmp_path: Path) -> None:
    owner = create_user(
        env, "contract@example.com", "--role", "owner", "--phone-verified", "--api-key", "run"
    )
    with server.client(headers={"authorization": f"Bearer {owner['api_key']}"}) as http:
        decoy_key_id = http.post("/api/api-keys", json={"name": "decoy"}).json()["id"]
    config = tmp_path / "schemathesis.toml"
    config.write_text(schemathesis_config(decoy_key_id))
    command = [
        sys.executable,
        "-m",
        "schemathesis.cli",
        "--config-file",
        str(config),
        "run",
        f"{server.base_url}/api/schema/openapi.json",
        "--header",
        f"Authorization: Bearer {owner['api_key']}",
        "--exclude-path",
        "/api/events",
        "--exclude-path",
        "/api/events/{channel}",
        "--phases",
        "examples,coverage,fuzzing,stateful",
        # One worker: CPython 3.11's ast.parse, which hypothesis calls while generating,
        # is not thread-safe ("AST constructor recursion depth mismatch").
        "--workers",
        "1",
        "--seed",
        "1",
        "--no-shrink",
        # Hypothesis' own health checks judge how fast data is generated on a busy
        # machine, not the API; they would only make the run flaky.
        "--suppress-health-check",
        "all",
        "--request-timeout",
        "10",
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=180, check=False, cwd=tmp_path)
    assert result.returncode == 0, result.stdout[-20000:] + result.stderr[-5000:]
