//! The OpenMLS provider: libcrux crypto and an in-memory key-value storage that the account
//! persists atomically together with its own state (see `account::Account::save`).

use openmls_libcrux_crypto::CryptoProvider;
use openmls_memory_storage::MemoryStorage;
use openmls_traits::OpenMlsProvider;

/// libcrux crypto and randomness, memory storage.
pub struct Provider {
    crypto: CryptoProvider,
    pub(crate) storage: MemoryStorage,
}

impl Provider {
    pub fn new() -> Result<Self, crate::CoreError> {
        Ok(Provider {
            crypto: CryptoProvider::new().map_err(crate::CoreError::mls)?,
            storage: MemoryStorage::default(),
        })
    }
}

impl OpenMlsProvider for Provider {
    type CryptoProvider = CryptoProvider;
    type RandProvider = CryptoProvider;
    type StorageProvider = MemoryStorage;

    fn storage(&self) -> &MemoryStorage {
        &self.storage
    }

    fn crypto(&self) -> &CryptoProvider {
        &self.crypto
    }

    fn rand(&self) -> &CryptoProvider {
        &self.crypto
    }
}
