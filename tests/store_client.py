"""A Python stand-in for the real TypeScript client's ObjectManager: the same
requests, encodings and crypto (RSA-OAEP-SHA256 key wraps, AES-256-GCM with the
key's IV, hex on the wire) as telentir-wire.md records, done with `cryptography`."""

from __future__ import annotations

import base64
import json
import secrets
from typing import Any, Protocol

import httpx
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

OAEP = padding.OAEP(mgf=padding.MGF1(algorithm=hashes.SHA256()), algorithm=hashes.SHA256(), label=None)


class Transport(Protocol):
    def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response: ...


def b64url_decode(text: str) -> bytes:
    text = text.replace("+", "-").replace("/", "_").rstrip("=")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class StoreClient:
    def __init__(self, http: Transport, api_key: str) -> None:
        self.http = http
        self.headers = {"authorization": f"Bearer {api_key}"}
        self.private: dict[str, rsa.RSAPrivateKey] = {}
        self.remote: dict[str, rsa.RSAPublicKey] = {}
        self.current = ""
        self.stores: dict[str, dict[str, str]] = {}

    def call(self, method: str, path: str, body: Any = None) -> Any:
        response = self.http.request(method, "/api" + path, json=body, headers=self.headers)
        assert 200 <= response.status_code < 300, (response.status_code, response.text)
        return json.loads(response.content) if response.content else None

    def connect(self) -> dict[str, Any]:
        server = self.call("GET", "/server")
        self.current = server["current"].lower()
        for name, view in server["keys"].items():
            key = serialization.load_der_public_key(b64url_decode(view["application/pkix-spki"]))
            assert isinstance(key, rsa.RSAPublicKey)
            self.remote[name.lower()] = key
        root = self.call("GET", "/root")
        self.stores = root["stores"]
        for name, entry in root["servers"].items():
            serialization.load_der_public_key(b64url_decode(entry["publicKey"]))
            if "privateKey" in entry:
                key = serialization.load_der_private_key(b64url_decode(entry["privateKey"]), None)
                assert isinstance(key, rsa.RSAPrivateKey)
                self.private[name] = key
        return root

    def key(self, key_id: str) -> tuple[bytes, bytes]:
        record = self.call("GET", f"/keys/{key_id}")
        private = self.private[record["server"]]
        return private.decrypt(bytes.fromhex(record["key"]), OAEP), bytes.fromhex(record["iv"])

    @staticmethod
    def seal(aes: bytes, iv: bytes, value: Any) -> tuple[str, str]:
        out = AESGCM(aes).encrypt(iv, json.dumps(value, separators=(",", ":")).encode(), None)
        return out[:-16].hex(), out[-16:].hex()

    def open(self, record: dict[str, Any]) -> Any:
        aes, iv = self.key(record["key_id"])
        data = bytes.fromhex(record["content"]) + bytes.fromhex(record["auth_tag"])
        return json.loads(AESGCM(aes).decrypt(iv, data, None))

    def create(self, store: str, value: Any) -> dict[str, Any]:
        entry = self.stores[store]
        content, tag = self.seal(*self.key(entry["defaultKey"]), value)
        body = {
            "keyId": entry["defaultKey"],
            "content": content,
            "authTag": tag,
            "related_object_id": entry["id"],
        }
        return self.call("PUT", "/objects", body)

    def all(self, store: str) -> list[Any]:
        store_id = self.stores[store]["id"]
        self.call("GET", f"/objects/{store_id}")
        return [{**self.open(r), "id": r["id"]} for r in self.call("GET", f"/objects/{store_id}/related")]

    def get(self, store: str, object_id: str) -> Any:
        record = self.call("GET", f"/objects/{object_id}")
        assert record["related_object_id"] == self.stores[store]["id"]
        return self.open(record)

    def update(self, store: str, object_id: str, value: Any) -> dict[str, Any]:
        record = self.call("GET", f"/objects/{object_id}")
        assert record["related_object_id"] == self.stores[store]["id"]
        content, tag = self.seal(*self.key(record["key_id"]), value)
        return self.call(
            "PATCH",
            f"/objects/{object_id}",
            {"key_id": record["key_id"], "content": content, "auth_tag": tag},
        )

    def delete(self, store: str, object_id: str) -> None:
        assert self.call("GET", f"/objects/{object_id}")["related_object_id"] == self.stores[store]["id"]
        assert self.call("DELETE", f"/objects/{object_id}") is None

    def publish(self, store: str, object_id: str) -> str:
        """Re-encrypt the item under a fresh key wrapped for the box's current server,
        POST the key and the copy, then PUT the publication (wire doc 4.6)."""
        record = self.call("GET", f"/objects/{object_id}")
        value = self.open(record)
        aes, iv = AESGCM.generate_key(256), secrets.token_bytes(12)
        wrapped = self.remote[self.current].encrypt(aes, OAEP)
        key = self.call("POST", "/keys", {"server": self.current, "key": wrapped.hex(), "iv": iv.hex()})
        content, tag = self.seal(aes, iv, value)
        copy = self.call(
            "POST",
            "/objects",
            {
                "key_id": key["id"],
                "related_object_id": object_id,
                "content": content,
                "auth_tag": tag,
                "metadata": record["metadata"],
            },
        )
        self.call("PUT", f"/objects/publish/{store}/{object_id}", {"objectId": copy["id"]})
        return copy["id"]
