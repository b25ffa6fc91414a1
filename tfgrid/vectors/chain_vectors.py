"""Reference vectors for tfgrid's chain module (tfgrid/tests/chain_offline.rs), made by Python
substrate-interface 1.7.11 -- the library tfchain's own integration tests use
(threefoldtech/tfchain substrate-node/tests/) -- entirely offline, from the vendored runtime
metadata tfgrid/metadata/tfchain.scale.

Rerun from the repository root (the venv has substrate-interface==1.7.11 installed):

    /tmp/tfvec/bin/python tfgrid/vectors/chain_vectors.py

It writes tfgrid/vectors/chain.json. No network is reached: the SubstrateInterface below has a
stub websocket and answers the few JSON-RPC methods its runtime set-up asks for (rpc_methods,
chain_getHeader, chain_getBlockHash, state_getRuntimeVersion, state_getMetadata) from the vendored metadata and the
fixed values here; any other method raises.

The keys come from Substrate's public development phrase (they hold nothing).
"""

import json
import os

from substrateinterface import Keypair, KeypairType, SubstrateInterface

HERE = os.path.dirname(os.path.abspath(__file__))
METADATA = os.path.join(HERE, "..", "metadata", "tfchain.scale")
OUT = os.path.join(HERE, "chain.json")

DEV_PHRASE = "bottom drive obey lake curtain smoke basket hold race lonely fit walk"
# Fixed chain context of the signed extrinsics (not a real chain's: any fixed values do).
GENESIS_HASH = "0x" + "ab" * 32
NONCE = 5
TIP = 0

HASH = "0123456789abcdef0123456789abcdef"  # a deployment's challenge hash: 32 hex digits
DEPLOYMENT_DATA = '{"type":"vm","name":"alice","projectName":"sandbox"}'
NAME = "alice-sandbox"


class OfflineSubstrate(SubstrateInterface):
    """A SubstrateInterface that never touches the network."""

    def __init__(self, metadata_hex, spec_version, tx_version):
        self._metadata_hex = metadata_hex
        self._spec = spec_version
        self._tx = tx_version
        super().__init__(
            websocket=object(), ss58_format=42, auto_discover=False, use_remote_preset=False
        )

    def rpc_request(self, method, params, result_handler=None):
        if method == "chain_getHeader":
            return {"result": {"parentHash": "0x" + "00" * 32, "number": "0x0"}}
        if method in ("chain_getBlockHash", "chain_getHead", "chain_getFinalizedHead"):
            return {"result": GENESIS_HASH}
        if method == "state_getRuntimeVersion":
            return {"result": {"specVersion": self._spec, "transactionVersion": self._tx}}
        if method == "state_getMetadata":
            return {"result": self._metadata_hex}
        if method == "rpc_methods":
            return {"result": {"methods": ["state_getRuntimeVersion", "state_getMetadata"]}}
        raise RuntimeError(f"offline: no RPC {method}")


def runtime_version(metadata_hex):
    """spec_version and transaction_version of the runtime the metadata came from: the
    constant System::Version (RuntimeVersion) inside the metadata itself."""
    probe = OfflineSubstrate(metadata_hex, 0, 0)
    probe.init_runtime(block_hash=GENESIS_HASH)
    version = probe.get_constant("System", "Version").value
    return version["spec_version"], version["transaction_version"]


def main():
    with open(METADATA, "rb") as f:
        metadata_hex = "0x" + f.read().hex()
    spec, txv = runtime_version(metadata_hex)
    sub = OfflineSubstrate(metadata_hex, spec, txv)
    sub.init_runtime(block_hash=GENESIS_HASH)

    def call(name, params):
        return sub.compose_call("SmartContractModule", name, params)

    node_call = call(
        "create_node_contract",
        {
            "node_id": 11,
            # HexHash = [u8; 32]: the 32 hex characters' ASCII bytes (as tfchain-client-go's
            # NewHexHash and grid-client pass the deployment's challenge hash).
            "deployment_hash": "0x" + HASH.encode().hex(),
            "deployment_data": DEPLOYMENT_DATA,
            "public_ips": 0,
            "solution_provider_id": None,
        },
    )
    name_call = call("create_name_contract", {"name": NAME})
    cancel_call = call("cancel_contract", {"contract_id": 42})

    sr = Keypair.create_from_mnemonic(DEV_PHRASE, ss58_format=42, crypto_type=KeypairType.SR25519)
    ed = Keypair.create_from_mnemonic(DEV_PHRASE, ss58_format=42, crypto_type=KeypairType.ED25519)

    def key(pallet, item, params):
        return "0x" + sub.create_storage_key(pallet, item, params).to_hex().removeprefix("0x")

    storage = {
        "contracts_42": key("SmartContractModule", "Contracts", [42]),
        "contract_id_by_name": key("SmartContractModule", "ContractIDByNameRegistration", [NAME]),
        "contract_id_by_node_hash": key(
            "SmartContractModule",
            "ContractIDByNodeIDAndHash",
            [11, "0x" + HASH.encode().hex()],
        ),
        "twin_id_by_account_sr25519": key(
            "TfgridModule", "TwinIdByAccountID", [sr.ss58_address]
        ),
    }

    # ed25519 is deterministic: the whole signed extrinsic is a fixed vector.
    ed_payload = sub.generate_signature_payload(call=cancel_call, era="00", nonce=NONCE, tip=TIP)
    ed_xt = sub.create_signed_extrinsic(call=cancel_call, keypair=ed, era=None, nonce=NONCE, tip=TIP)
    # sr25519 signs with randomness: the payload is fixed, the signature only verifies.
    sr_payload = sub.generate_signature_payload(call=cancel_call, era="00", nonce=NONCE, tip=TIP)
    sr_xt = sub.create_signed_extrinsic(call=cancel_call, keypair=sr, era=None, nonce=NONCE, tip=TIP)
    sr_bytes = bytes(sr_xt.data.data)
    # Its signature (random each run) verifies; the test checks everything else byte for byte.
    sig_sr = sr_xt.value["signature"]["Sr25519"]
    assert sr.verify(bytes(sr_payload.data), bytes.fromhex(sig_sr[2:]))

    out = {
        "generator": "substrate-interface 1.7.11 (tfgrid/vectors/chain_vectors.py), offline",
        "metadata": "tfgrid/metadata/tfchain.scale",
        "spec_version": spec,
        "transaction_version": txv,
        "genesis_hash": GENESIS_HASH,
        "nonce": NONCE,
        "tip": TIP,
        "era": "immortal",
        "dev_phrase": DEV_PHRASE,
        "hash": HASH,
        "deployment_data": DEPLOYMENT_DATA,
        "name": NAME,
        "accounts": {
            "sr25519": "0x" + sr.public_key.hex(),
            "sr25519_ss58": sr.ss58_address,
            "ed25519": "0x" + ed.public_key.hex(),
            "ed25519_ss58": ed.ss58_address,
        },
        "calls": {
            "create_node_contract": str(node_call.data),
            "create_name_contract": str(name_call.data),
            "cancel_contract": str(cancel_call.data),
        },
        "storage": storage,
        "signed": {
            "call": "cancel_contract",
            "ed25519_payload": str(ed_payload),
            "ed25519_extrinsic": str(ed_xt.data),
            "sr25519_payload": str(sr_payload),
            "sr25519_extrinsic_example": "0x" + sr_bytes.hex(),
        },
    }
    with open(OUT, "w") as f:
        json.dump(out, f, indent=2)
        f.write("\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
