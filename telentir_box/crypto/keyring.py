"""The keys the running box holds in memory: sealers derived from the master key,
the session-signing secret and the platform (box) RSA keypairs."""

from __future__ import annotations

from dataclasses import dataclass, field

from cryptography.hazmat.primitives.asymmetric import rsa

from telentir_box.crypto.sealing import Sealer, hkdf


@dataclass(frozen=True)
class PlatformKey:
    name: str
    public: rsa.RSAPublicKey
    private: rsa.RSAPrivateKey


@dataclass
class Keyring:
    master_key: bytes = field(repr=False)
    session_secret: bytes = field(repr=False)
    platform_keys: dict[str, PlatformKey]
    current_platform: str
    _sealers: dict[str, Sealer] = field(default_factory=dict, repr=False)

    def sealer(self, purpose: str) -> Sealer:
        if purpose not in self._sealers:
            self._sealers[purpose] = Sealer(self.master_key, purpose)
        return self._sealers[purpose]

    def derive(self, purpose: str) -> bytes:
        """A 32-byte key for one purpose (e.g. a MAC pepper), derived from the master key."""
        return hkdf(self.master_key, purpose)

    @property
    def current(self) -> PlatformKey:
        return self.platform_keys[self.current_platform]
