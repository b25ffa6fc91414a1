//! Signing extrinsics with the operator's [`Identity`]: a `MultiSignature` (`Sr25519` with the
//! `substrate` signing context, or `Ed25519`) and the account as `MultiAddress::Id`, as
//! tfchain's runtime (`Address = MultiAddress<AccountId, ()>`, `Signature = MultiSignature`)
//! expects.

use subxt::{
    SubstrateConfig,
    tx::Signer,
    utils::{AccountId32, MultiSignature},
};

use crate::identity::{AccountId, Identity, KeyType};

/// The subxt configuration used for tfchain: 32-byte accounts, `MultiAddress`,
/// `MultiSignature`, blake2-256 and the standard transaction extensions, which is what tfchain's
/// runtime has (`CheckNonZeroSender`, `CheckSpecVersion`, `CheckTxVersion`, `CheckGenesis`,
/// `CheckMortality`, `CheckNonce`, `CheckWeight`, `ChargeTransactionPayment`).
pub type TfConfig = SubstrateConfig;

/// The subxt account of an identity's account.
pub fn account_id32(account: &AccountId) -> AccountId32 {
    AccountId32(account.0)
}

impl Signer<TfConfig> for Identity {
    fn account_id(&self) -> AccountId32 {
        account_id32(&self.account())
    }

    fn sign(&self, signer_payload: &[u8]) -> MultiSignature {
        let signature = Identity::sign(self, signer_payload);
        match self.key_type() {
            KeyType::Sr25519 => MultiSignature::Sr25519(signature),
            KeyType::Ed25519 => MultiSignature::Ed25519(signature),
        }
    }
}
