"""HTTP routes of the object store (/api/server, /root, /servers, /keys, /objects and
/objects/publish), thin adapters over the store services."""

from __future__ import annotations

import msgspec
from litestar import Controller, MediaType, Response, delete, get, patch, post, put
from litestar.di import NamedDependency
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import FromPath, FromQuery, JSONBody

from telentir_box.auth.guards import requires_object_auth
from telentir_box.auth.principal import Principal
from telentir_box.box import Box
from telentir_box.errors import Conflict, NotFound, RateLimited
from telentir_box.store import keys, objects, publish, root, servers
from telentir_box.store.models import (
    CreatedServer,
    KeyCreate,
    KeyMint,
    KeyPatch,
    KeyRecord,
    ObjectPage,
    ObjectRecord,
    ObjectWrite,
    Publication,
    PublicationBody,
    PublicationPage,
    Root,
    ServerCreate,
    ServerInfo,
    ServerPatch,
    StoreType,
    UserServer,
)
from telentir_box.web.openapi import errors
from telentir_box.web.paging import Cursor, Limit, page_size


class ServerController(Controller):
    path = ""
    guards = [requires_object_auth]
    tags = ["store"]

    @get("/server", summary="The box's platform public keys and the current one")
    async def get_server(self, box: NamedDependency[Box]) -> ServerInfo:
        return servers.platform_server_info(box.keyring)

    @get("/root", summary="The caller's stores and servers (provisioned on first call)")
    async def get_root(self, box: NamedDependency[Box], principal: NamedDependency[Principal]) -> Root:
        return await root.get_root(box.db, box.keyring, principal.user_id)

    @get("/servers", summary="The caller's servers")
    async def list_servers(
        self, box: NamedDependency[Box], principal: NamedDependency[Principal]
    ) -> list[UserServer]:
        await root.ensure_provisioned(box.db, box.keyring, principal.user_id)
        return await servers.list_servers(box.db, principal.user_id)

    @post(
        "/servers",
        summary="Register a server: generate a keypair or upload a public key",
        responses=errors(Conflict, RateLimited),
    )
    async def create_server(
        self, box: NamedDependency[Box], principal: NamedDependency[Principal], data: JSONBody[ServerCreate]
    ) -> CreatedServer:
        new = await servers.check_new_server(box.keyring, data)
        await root.ensure_provisioned(box.db, box.keyring, principal.user_id)
        return await servers.create_server(box.db, box.keyring, box.keygen, principal.user_id, new)

    @patch("/servers/{name:str}", summary="Deprecate (or revive) a server for new keys")
    async def patch_server(
        self,
        box: NamedDependency[Box],
        principal: NamedDependency[Principal],
        name: FromPath[str],
        data: JSONBody[ServerPatch],
    ) -> UserServer:
        return await servers.set_deprecated(box.db, principal.user_id, name, data.deprecated)


class KeyController(Controller):
    path = "/keys"
    guards = [requires_object_auth]
    tags = ["store"]

    @post("", summary="Store a key the client wrapped (hex)", responses=errors(NotFound))
    async def create_key(
        self, box: NamedDependency[Box], principal: NamedDependency[Principal], data: JSONBody[KeyCreate]
    ) -> KeyRecord:
        return await keys.create_key(box.db, box.keyring, principal.user_id, data, box.config.store)

    @put(
        "",
        status_code=201,
        summary="Mint or store a key (documented base64 form); returns its id",
        responses={
            **errors(NotFound),
            201: ResponseSpec(str, description="The new key's id, as a JSON string", generate_examples=False),
        },
    )
    async def mint_key(
        self, box: NamedDependency[Box], principal: NamedDependency[Principal], data: JSONBody[KeyMint]
    ) -> Response[bytes]:
        key_id = await keys.mint_key(box.db, box.keyring, principal.user_id, data, box.config.store)
        return Response(msgspec.json.encode(key_id), status_code=201, media_type=MediaType.JSON)

    @get("/{key_id:str}", summary="A key record (wrapped key and IV in hex)")
    async def get_key(
        self, box: NamedDependency[Box], principal: NamedDependency[Principal], key_id: FromPath[str]
    ) -> KeyRecord:
        return await keys.get_key(box.db, principal.user_id, key_id)

    @patch("/{key_id:str}", summary="Update a key's metadata, wrap or deprecation")
    async def patch_key(
        self,
        box: NamedDependency[Box],
        principal: NamedDependency[Principal],
        key_id: FromPath[str],
        data: JSONBody[KeyPatch],
    ) -> KeyRecord:
        return await keys.patch_key(box.db, box.keyring, principal.user_id, key_id, data, box.config.store)

    @delete("/{key_id:str}", summary="Delete a key (its objects stay)", responses=errors(Conflict))
    async def delete_key(
        self, box: NamedDependency[Box], principal: NamedDependency[Principal], key_id: FromPath[str]
    ) -> None:
        await keys.delete_key(box.db, principal.user_id, key_id)


class ObjectController(Controller):
    path = "/objects"
    guards = [requires_object_auth]
    tags = ["store"]

    @put(
        "",
        status_code=201,
        summary="Create an object (client form: keyId/authTag, hex or base64)",
        responses=errors(NotFound),
    )
    async def put_object(
        self, box: NamedDependency[Box], principal: NamedDependency[Principal], data: JSONBody[ObjectWrite]
    ) -> ObjectRecord:
        return await objects.create_object(box.db, principal.user_id, data, box.config.store)

    @post("", summary="Create an object (snake_case form)", responses=errors(NotFound))
    async def post_object(
        self, box: NamedDependency[Box], principal: NamedDependency[Principal], data: JSONBody[ObjectWrite]
    ) -> ObjectRecord:
        return await objects.create_object(box.db, principal.user_id, data, box.config.store)

    @get("", summary="The caller's objects, by parent and/or key, cursor-paginated in creation order")
    async def list_objects(
        self,
        box: NamedDependency[Box],
        principal: NamedDependency[Principal],
        related_object_id: FromQuery[str | None] = None,
        key_id: FromQuery[str | None] = None,
        cursor: Cursor = None,
        limit: Limit = None,
    ) -> ObjectPage:
        return await objects.list_objects(
            box.db,
            principal.user_id,
            related_object_id=related_object_id,
            key_id=key_id,
            cursor=cursor,
            limit=page_size(limit, box.config.store.page_size),
        )

    @get("/{object_id:str}", summary="An object record (content and auth_tag in hex)")
    async def get_object(
        self, box: NamedDependency[Box], principal: NamedDependency[Principal], object_id: FromPath[str]
    ) -> ObjectRecord:
        return await objects.get_object(box.db, principal.user_id, object_id)

    @patch("/{object_id:str}", summary="Update an object; absent fields are kept")
    async def patch_object(
        self,
        box: NamedDependency[Box],
        principal: NamedDependency[Principal],
        object_id: FromPath[str],
        data: JSONBody[ObjectWrite],
    ) -> ObjectRecord:
        return await objects.patch_object(box.db, principal.user_id, object_id, data, box.config.store)

    @delete(
        "/{object_id:str}",
        summary="Delete an object with its descendants and publications",
        responses=errors(Conflict),
    )
    async def delete_object(
        self, box: NamedDependency[Box], principal: NamedDependency[Principal], object_id: FromPath[str]
    ) -> None:
        await objects.delete_object(box.db, principal.user_id, object_id)

    @get("/{object_id:str}/related", summary="The object's direct children, in creation order")
    async def list_related(
        self, box: NamedDependency[Box], principal: NamedDependency[Principal], object_id: FromPath[str]
    ) -> list[ObjectRecord]:
        return await objects.list_related(box.db, principal.user_id, object_id)

    @put("/publish/{type:str}/{related_id:str}", summary="Publish a box-readable copy of an item")
    async def publish(
        self,
        box: NamedDependency[Box],
        principal: NamedDependency[Principal],
        type: FromPath[StoreType],
        related_id: FromPath[str],
        data: JSONBody[PublicationBody],
    ) -> Publication:
        return await publish.publish(box.db, box.keyring, principal.user_id, type, related_id, data.objectId)

    @delete("/publish/{type:str}/{related_id:str}", summary="Unpublish an item (the copy stays)")
    async def unpublish(
        self,
        box: NamedDependency[Box],
        principal: NamedDependency[Principal],
        type: FromPath[StoreType],
        related_id: FromPath[str],
    ) -> None:
        await publish.unpublish(box.db, principal.user_id, type, related_id)

    @get("/publish/{type:str}", summary="The caller's publications of one type, cursor-paginated")
    async def list_publications(
        self,
        box: NamedDependency[Box],
        principal: NamedDependency[Principal],
        type: FromPath[StoreType],
        cursor: Cursor = None,
        limit: Limit = None,
    ) -> PublicationPage:
        return await publish.list_publications(
            box.db, principal.user_id, type, cursor=cursor, limit=page_size(limit, box.config.store.page_size)
        )


store_routes = [ServerController, KeyController, ObjectController]
