"""HTTP routes of personas (/api/persona/list-external, /persona/{id} and
/persona/{id}/play), thin adapters over the persona catalog."""

from __future__ import annotations

from typing import Annotated

import msgspec
from litestar import Controller, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody

from telentir_box.auth.guards import requires_object_auth
from telentir_box.auth.principal import Principal
from telentir_box.box import Box
from telentir_box.crypto.chunk import EncryptedChunk
from telentir_box.crypto.user_jwt import JwtInvalid
from telentir_box.errors import UpstreamFailed
from telentir_box.telephony.elevenlabs import ElevenLabsNotConfigured
from telentir_box.telephony.personas import Persona, play_persona
from telentir_box.web.openapi import errors


class PlayBody(msgspec.Struct, forbid_unknown_fields=True):
    """`server`: the caller's user server whose private key signed `jwt` (RS256)."""

    server: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    jwt: Annotated[str, msgspec.Meta(min_length=1, max_length=65_536)]


class PersonaController(Controller):
    path = "/persona"
    guards = [requires_object_auth]
    tags = ["personas"]

    # A static path: Litestar's router prefers it to /persona/{persona_id} below.
    @get("/list-external", summary="The catalog of voices (ElevenLabs and OpenAI) as personas")
    async def list_external(self, box: NamedDependency[Box]) -> list[Persona]:
        return await box.personas.list_personas()

    @get("/{persona_id:str}", summary="One persona of the catalog", responses=errors(UpstreamFailed))
    async def get_persona(self, box: NamedDependency[Box], persona_id: FromPath[str]) -> Persona:
        return await box.personas.get_persona(persona_id)

    @post(
        "/{persona_id:str}/play",
        status_code=200,
        summary="A spoken sample of the persona, encrypted for the caller's server that signed `jwt`",
        responses=errors(JwtInvalid, UpstreamFailed, ElevenLabsNotConfigured),
    )
    async def play(
        self,
        box: NamedDependency[Box],
        principal: NamedDependency[Principal],
        persona_id: FromPath[str],
        data: JSONBody[PlayBody],
    ) -> EncryptedChunk:
        return await play_persona(
            box.personas,
            box.db,
            principal.user_id,
            persona_id,
            server=data.server,
            token=data.jwt,
            now=box.clock().timestamp(),
        )


persona_routes = [PersonaController]
