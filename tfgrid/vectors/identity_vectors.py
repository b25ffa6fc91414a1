"""Identity vectors for tfgrid/src/identity.rs, computed by Python substrate-interface.

substrate-interface is the client tfchain's own integration tests use
(threefoldtech/tfchain substrate-node/tests). Rerun from the repository root:

    python3 -m venv /tmp/tfvec && /tmp/tfvec/bin/pip install substrate-interface==1.7.11
    /tmp/tfvec/bin/python tfgrid/vectors/identity_vectors.py > tfgrid/vectors/identity.json

Only public development phrases are used; keys from them hold nothing.
"""
import json

from substrateinterface import Keypair, KeypairType

PHRASES = [
    "bottom drive obey lake curtain smoke basket hold race lonely fit walk",
    "volume behind cable present pull exchange wish loyal avocado snap film increase",
]
MESSAGE = b"rmb challenge"

out = {"generator": "substrate-interface 1.7.11 Keypair.create_from_mnemonic", "message_hex": MESSAGE.hex(), "cases": []}
for phrase in PHRASES:
    for name, kind in (("sr25519", KeypairType.SR25519), ("ed25519", KeypairType.ED25519)):
        kp = Keypair.create_from_mnemonic(phrase, ss58_format=42, crypto_type=kind)
        sig = kp.sign(MESSAGE)
        out["cases"].append({
            "phrase": phrase,
            "key_type": name,
            "seed_hex": kp.seed_hex if isinstance(kp.seed_hex, str) else kp.seed_hex.hex(),
            "public_hex": kp.public_key.hex(),
            "ss58": kp.ss58_address,
            "signature_hex": sig.hex(),
        })
print(json.dumps(out, indent=1))
