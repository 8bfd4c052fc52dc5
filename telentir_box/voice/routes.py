"""HTTP routes of calls: the client's session call, call usage, and the providers'
webhooks (Twilio voice, status and recording; ElevenLabs post-call and
personalization). Webhooks carry no user credential: each is authenticated by its
sender's signature or secret over the raw body, read here before anything else."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, Response, get, post
from litestar.di import NamedDependency
from litestar.params import JSONBody, QueryParameter

from telentir_box.auth.guards import requires_object_auth
from telentir_box.auth.principal import Principal
from telentir_box.box import Box
from telentir_box.crypto.user_jwt import JwtInvalid
from telentir_box.errors import (
    InsufficientCredits,
    NotFound,
    PayloadTooLarge,
    ServiceUnavailable,
    UpstreamFailed,
    ValidationFailed,
)
from telentir_box.voice.elevenlabs_webhooks import (
    WebhookNotConfigured,
    WebhookSignatureInvalid,
    verify_elevenlabs,
)
from telentir_box.voice.personalize import (
    PersonalizeNotConfigured,
    WebhookUnauthorized,
    check_personalize_secret,
)
from telentir_box.voice.session import (
    WEBHOOK_PATHS,
    CallLimitReached,
    NoUsableNumber,
    PersonaUnsupported,
    SessionCallAnswer,
    SessionCallBody,
)
from telentir_box.voice.twilio_webhooks import Params, TwilioSignatureInvalid, verify_twilio
from telentir_box.voice.usage import CallUsage, call_usage
from telentir_box.web.openapi import errors

TWIML = "text/xml"
CallQuery = Annotated[
    str | None, QueryParameter(max_length=64, description="the box's id of an outbound call")
]
PeriodQuery = Annotated[
    str | None, QueryParameter(pattern=r"^\d{4}-(0[1-9]|1[0-2])$", description="a month, YYYY-MM (UTC)")
]


class WebhookAck(msgspec.Struct):
    ok: bool = True


class InitiationData(msgspec.Struct):
    """The conversation-initiation data ElevenLabs reads (providers.md 2.12)."""

    type: str
    dynamic_variables: dict[str, Any]
    conversation_config_override: dict[str, Any] | None = None


class SessionController(Controller):
    path = "/session"
    guards = [requires_object_auth]
    tags = ["calls"]

    @post(
        "/call",
        status_code=201,
        summary="Place an AI call: the client's RS256 JWT, its `data` the call payload sealed for the box",
        responses=errors(
            JwtInvalid,
            InsufficientCredits,
            NotFound,
            NoUsableNumber,
            PersonaUnsupported,
            CallLimitReached,
            UpstreamFailed,
            ServiceUnavailable,
        ),
    )
    async def call(
        self,
        box: NamedDependency[Box],
        principal: NamedDependency[Principal],
        data: JSONBody[SessionCallBody],
    ) -> SessionCallAnswer:
        return await box.voice.placer.place(principal.user_id, data, box.clock().timestamp())


class CallUsageController(Controller):
    path = "/calls"
    guards = [requires_object_auth]
    tags = ["calls"]

    @get("/usage", summary="Calls and seconds of the caller, inbound and outbound, in one month (UTC)")
    async def usage(
        self,
        box: NamedDependency[Box],
        principal: NamedDependency[Principal],
        period: PeriodQuery = None,
    ) -> CallUsage:
        return await call_usage(box.db, principal.user_id, period, box.clock())


async def _twilio_params(box: Box, request: Request[Any, Any, Any], name: str) -> Params:
    body = await request.body()
    return verify_twilio(
        box.config.twilio.auth_token,
        box.config.server.public_url,
        WEBHOOK_PATHS[name],
        request.scope["query_string"].decode("latin-1"),
        body,
        request.headers.get("x-twilio-signature"),
    )


async def _raw_body(request: Request[Any, Any, Any], limit: int) -> bytearray:
    """The body as one bytearray, filled in place when its length is announced: a
    post_call_audio body is tens of MB, and growing it chunk by chunk copies it."""
    declared = request.headers.get("content-length", "")
    size = int(declared) if declared.isdigit() else 0
    if size > limit:
        raise PayloadTooLarge(f"The webhook body is larger than {limit} bytes")
    body, filled = bytearray(size), 0
    async for chunk in request.stream():
        if filled + len(chunk) > len(body):
            if filled + len(chunk) > limit:
                raise PayloadTooLarge(f"The webhook body is larger than {limit} bytes")
            body.extend(b"\0" * (filled + len(chunk) - len(body)))
        body[filled : filled + len(chunk)] = chunk
        filled += len(chunk)
    del body[filled:]
    return body


class WebhookController(Controller):
    path = "/webhooks"
    tags = ["webhooks"]

    @post(
        "/twilio/voice",
        status_code=200,
        media_type=TWIML,
        summary="Twilio voice webhook (X-Twilio-Signature): the TwiML that hands the call to the agent",
        responses=errors(TwilioSignatureInvalid, PayloadTooLarge),
        description=(
            "Form body as Twilio posts it (CallSid, From, To, Direction, CallStatus, ...), signed over"
            " `public_url` + path + query with the account's auth token (403 TWILIO_SIGNATURE_INVALID)."
            " Answers text/xml: ElevenLabs' TwiML, or a polite message and a hang-up."
        ),
    )
    async def twilio_voice(
        self, box: NamedDependency[Box], request: Request[Any, Any, Any], call: CallQuery = None
    ) -> Response[str]:
        params = await _twilio_params(box, request, "voice")
        twiml = await box.voice.twilio_webhooks.voice(params, call)
        await box.voice.elevenlabs_webhooks.replay(None, params.get("CallSid"))
        return Response(twiml, media_type=TWIML)

    @post(
        "/twilio/status",
        status_code=204,
        summary="Twilio call status callback (X-Twilio-Signature)",
        responses=errors(TwilioSignatureInvalid, PayloadTooLarge),
        description="Form body: CallSid, CallStatus, SequenceNumber, CallDuration, AnsweredBy, ...",
    )
    async def twilio_status(
        self, box: NamedDependency[Box], request: Request[Any, Any, Any], call: CallQuery = None
    ) -> None:
        params = await _twilio_params(box, request, "status")
        await box.voice.twilio_webhooks.status(params, call)

    @post(
        "/twilio/recording",
        status_code=204,
        summary="Twilio recording status callback (X-Twilio-Signature)",
        responses=errors(TwilioSignatureInvalid, PayloadTooLarge),
        description="Form body: CallSid, RecordingSid, RecordingUrl, RecordingStatus, RecordingDuration, ...",
    )
    async def twilio_recording(
        self, box: NamedDependency[Box], request: Request[Any, Any, Any], call: CallQuery = None
    ) -> None:
        params = await _twilio_params(box, request, "recording")
        await box.voice.twilio_webhooks.recording(params, call)

    @post(
        "/elevenlabs",
        status_code=200,
        request_max_body_size=None,
        summary="ElevenLabs post-call webhook (ElevenLabs-Signature): transcription, audio, failure",
        responses=errors(ValidationFailed, WebhookSignatureInvalid, PayloadTooLarge, WebhookNotConfigured),
        description=(
            "JSON {type, event_timestamp, data}: post_call_transcription, post_call_audio (data.full_audio,"
            " base64 MP3) or call_initiation_failure; other types are acknowledged and ignored. Header"
            " `ElevenLabs-Signature: t=<unix>,v0=<hex HMAC-SHA256 of 't.body'>`"
            " (401 WEBHOOK_SIGNATURE_INVALID)."
        ),
    )
    async def elevenlabs(self, box: NamedDependency[Box], request: Request[Any, Any, Any]) -> WebhookAck:
        # Held in a list the receiver empties: a recording of tens of MB is let go
        # as soon as it is sealed.
        pending = [await _raw_body(request, box.config.elevenlabs.max_webhook_bytes)]
        verify_elevenlabs(
            box.config.elevenlabs.webhook_secret,
            request.headers.get("elevenlabs-signature"),
            pending[0],
            box.clock().timestamp(),
        )
        await box.voice.elevenlabs_webhooks.receive(pending)
        return WebhookAck()

    @post(
        "/elevenlabs/personalize",
        status_code=200,
        summary="ElevenLabs conversation-initiation webhook (x-webhook-secret or Bearer): who is calling",
        responses=errors(ValidationFailed, WebhookUnauthorized, PersonalizeNotConfigured),
        description="JSON {caller_id, agent_id, called_number, call_sid}; other keys are tolerated.",
    )
    async def personalize(self, box: NamedDependency[Box], request: Request[Any, Any, Any]) -> InitiationData:
        check_personalize_secret(
            box.config.elevenlabs.personalize_secret,
            request.headers.get("x-webhook-secret"),
            request.headers.get("authorization"),
        )
        answer = await box.voice.personalizer.answer(await request.body())
        return msgspec.convert(answer, InitiationData)


call_routes = [SessionController, CallUsageController, WebhookController]
