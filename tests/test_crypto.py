import base64

import pytest
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric import rsa as crypto_rsa

from telentir_box.crypto import rsa
from telentir_box.crypto.encoding import decode_base64, decode_base64url, decode_hex, encode_base64url
from telentir_box.crypto.sealing import MasterKeyError, Sealer, create_master_key, load_master_key


@pytest.mark.parametrize("text", ["abc", "zz", "0g", " 00", "00 "])
def test_encoding_hex_is_strict(text: str) -> None:
    with pytest.raises(ValueError, match="hex"):
        decode_hex(text)


def test_encoding_hex_accepts_both_cases() -> None:
    assert decode_hex("00aBfF") == b"\x00\xab\xff"


@pytest.mark.parametrize("text", ["abc", "ab=c", "a b=", "ab-_", "YQ"])
def test_encoding_base64_is_strict(text: str) -> None:
    with pytest.raises(ValueError, match="base64"):
        decode_base64(text)


def test_encoding_base64url_accepts_padded_unpadded_and_standard() -> None:
    data = bytes(range(250))
    unpadded = encode_base64url(data)
    assert "=" not in unpadded
    assert decode_base64url(unpadded) == data
    assert decode_base64url(base64.b64encode(data).decode()) == data
    with pytest.raises(ValueError, match="base64url"):
        decode_base64url("a")
    with pytest.raises(ValueError, match="base64url"):
        decode_base64url("-----BEGIN PUBLIC KEY-----")


def test_sealing_round_trip_and_binding() -> None:
    master = b"k" * 32
    sealer = Sealer(master, "purpose-a")
    sealed = sealer.seal(b"secret", b"row-1")
    assert b"secret" not in sealed
    assert sealer.open(sealed, b"row-1") == b"secret"
    with pytest.raises(InvalidTag):
        sealer.open(sealed, b"row-2")  # swapped between rows
    with pytest.raises(InvalidTag):
        Sealer(master, "purpose-b").open(sealed, b"row-1")  # another purpose
    with pytest.raises(InvalidTag):
        Sealer(b"x" * 32, "purpose-a").open(sealed, b"row-1")  # another master key
    assert sealer.seal(b"secret", b"row-1") != sealed  # fresh nonce each time


def test_master_key_file_and_environment(tmp_path) -> None:
    assert create_master_key(tmp_path) is True
    assert create_master_key(tmp_path) is False
    key = load_master_key(tmp_path, environ={})
    assert len(key) == 32
    other = base64.b64encode(b"e" * 32).decode()
    assert load_master_key(tmp_path, environ={"TELENTIR_BOX_MASTER_KEY": other}) == b"e" * 32
    with pytest.raises(MasterKeyError, match="32 bytes"):
        load_master_key(tmp_path, environ={"TELENTIR_BOX_MASTER_KEY": "c2hvcnQ="})
    with pytest.raises(MasterKeyError, match="missing"):
        load_master_key(tmp_path / "nowhere", environ={})


@pytest.fixture(scope="module")
def keypair() -> crypto_rsa.RSAPrivateKey:
    return rsa.generate_private_key()


def test_rsa_wire_formats_round_trip(keypair: crypto_rsa.RSAPrivateKey) -> None:
    spki = rsa.spki_text(keypair.public_key())
    assert "=" not in spki
    assert "+" not in spki and "/" not in spki
    parsed = rsa.parse_spki(spki)
    assert parsed.public_numbers() == keypair.public_key().public_numbers()
    restored = rsa.load_private_key(rsa.private_key_der(keypair))
    aes_key = bytes(range(32))
    assert rsa.unwrap(restored, rsa.wrap(parsed, aes_key)) == aes_key
    jwk = rsa.jwk(keypair.public_key())
    assert jwk["kty"] == "RSA"
    assert jwk["e"] == "AQAB"
    assert jwk["key_ops"] == ["verify"]


def test_rsa_refuses_small_and_non_rsa_keys() -> None:
    small = crypto_rsa.generate_private_key(public_exponent=65537, key_size=1024)  # noqa: S505 - the weak key under test
    with pytest.raises(ValueError, match="2048"):
        rsa.load_public_key(rsa.public_key_der(small.public_key()))
    ec_key = ec.generate_private_key(ec.SECP256R1()).public_key()
    der = ec_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    with pytest.raises(ValueError, match="RSA"):
        rsa.load_public_key(der)
    with pytest.raises(ValueError, match="SubjectPublicKeyInfo"):
        rsa.load_public_key(b"not der")
