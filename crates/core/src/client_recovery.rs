//! Recovery when every device is lost, the flows: keeping the sealed backup on the server
//! current, and becoming the account again on a new device (registering it with the recovery
//! key, replacing the lost devices on the signed list, rejoining every conversation by
//! external commit and removing the lost devices from it).

use missive_proto::api::{
    CommitResponse, GroupInfoResponse, RecoveryBackup, RecoveryHistoryPage, RecoveryHistoryRead,
    RecoveryRequest, RegisterResponse,
};
use missive_proto::{ErrorCode, B64};

use super::{http_client, Barrier, Client, Transport, KEY_PACKAGE_STOCK, MAX_ATTEMPTS};
use crate::account::Account;
use crate::error::CoreError;
use crate::recovery::RecoveryKey;
use crate::store::AccountStore;

/// What a recovery did.
#[derive(Clone, Debug, Default)]
pub struct Recovered {
    /// Conversations rejoined.
    pub rejoined: usize,
    /// Conversations that could not be rejoined, with why.
    pub failed: Vec<(String, String)>,
    /// Lost devices taken off the account.
    pub revoked: usize,
    /// Messages of the history backup restored.
    pub messages: usize,
}

impl Client {
    /// Uploads the recovery backup if it changed (always with `force`). A device whose key is
    /// not the account's (`recovery_key_exists`) leaves the backup to the devices that hold it.
    pub async fn upload_backup(&mut self, force: bool) -> Result<(), CoreError> {
        if let Some((upload, digest)) = self.account.backup_upload(force)? {
            match self
                .transport()
                .put_no_content("/v1/recovery", &upload)
                .await
            {
                Ok(()) => self.account.backup_uploaded(digest)?,
                Err(e) if e.server_code() == Some(ErrorCode::RecoveryKeyExists) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Makes a recovery key for an account that has none (registered before recovery keys
    /// existed) and uploads the backup under it.
    pub async fn make_recovery_key(&mut self) -> Result<RecoveryKey, CoreError> {
        if self.account.recovery_key()?.is_some() {
            return Err(CoreError::Usage(
                "this account has a recovery key already (shown when it was registered); it \
                 cannot be shown again or changed"
                    .into(),
            ));
        }
        let key = RecoveryKey::generate();
        let (upload, digest) = self.account.backup_under(&key)?;
        match self
            .transport()
            .put_no_content("/v1/recovery", &upload)
            .await
        {
            Ok(()) => {}
            Err(e) if e.server_code() == Some(ErrorCode::RecoveryKeyExists) => {
                return Err(CoreError::Usage(
                    "your account has a recovery key already, made on another of your devices: \
                     keep using that one"
                        .into(),
                ))
            }
            Err(e) => return Err(e),
        }
        self.account.set_recovery_key(&key)?;
        self.account.backup_uploaded(digest)?;
        Ok(key)
    }

    /// Becomes the account of `address` again on a new device, from its recovery key: every
    /// other device of the account is taken off it (they are lost), and every conversation of
    /// the backup is rejoined.
    pub async fn recover(
        store: Box<dyn AccountStore + Send>,
        server: &str,
        address: &str,
        key: &RecoveryKey,
    ) -> Result<(Client, Recovered), CoreError> {
        Self::recover_with_barrier(store, server, address, key, None).await
    }

    /// [`Client::recover`] with a [`Barrier`] run before every request of the new device
    /// (the browser's store).
    pub async fn recover_with_barrier(
        store: Box<dyn AccountStore + Send>,
        server: &str,
        address: &str,
        key: &RecoveryKey,
        barrier: Option<Barrier>,
    ) -> Result<(Client, Recovered), CoreError> {
        let server = crate::lookup::server_url(server)?;
        let address = crate::lookup::address(address)?;
        if Account::is_registered(store.as_ref())? {
            return Err(CoreError::Usage(
                "this home already holds a registered account".into(),
            ));
        }
        let http = http_client()?;
        let anonymous = Transport {
            http: http.clone(),
            server: server.clone(),
            token: String::new(),
            barrier: None,
        };
        let refused = |e: CoreError| match e.server_code() {
            Some(ErrorCode::RecoveryRefused) => CoreError::Usage(format!(
                "no recovery backup of {address} opens with this key (check the key and the \
                 address)"
            )),
            _ => e,
        };
        let sealed: RecoveryBackup = anonymous
            .post(
                "/v1/recovery/backup",
                &RecoveryRequest {
                    address: address.clone(),
                    auth: key.auth(&address),
                },
            )
            .await
            .map_err(refused)?;
        let backup = key
            .open(&address, sealed.backup.as_bytes())
            .ok_or_else(|| {
                CoreError::Usage(format!(
                    "the backup the server holds for {address} does not open with this key"
                ))
            })?;
        let (mut account, request) = Account::restore(store, &server, &address, key, &backup)?;
        let response: RegisterResponse = anonymous
            .post("/v1/recovery/device", &request)
            .await
            .map_err(refused)?;
        account.finish_restore(&response, key, &backup)?;
        let mut client = Client {
            account,
            http,
            barrier,
            stock_checked: false,
            stock: KEY_PACKAGE_STOCK,
        };
        client.ensure_key_packages().await?;
        let mut recovered = Recovered {
            revoked: client.replace_lost_devices().await?,
            ..Recovered::default()
        };
        client.rejoin_all(&mut recovered).await?;
        recovered.messages = client.restore_history(key).await?;
        client.upload_backup(true).await?;
        Ok((client, recovered))
    }

    /// Fetches the history segments of a recovered account and stores their messages.
    async fn restore_history(&mut self, key: &RecoveryKey) -> Result<usize, CoreError> {
        let address = self.account.address().to_owned();
        let mut segments = Vec::new();
        let mut after = 0;
        loop {
            let page: RecoveryHistoryPage = self
                .transport()
                .post(
                    "/v1/recovery/history/read",
                    &RecoveryHistoryRead {
                        address: address.clone(),
                        auth: key.auth(&address),
                        after,
                    },
                )
                .await?;
            after = page.segments.last().map_or(after, |s| s.index);
            segments.extend(page.segments.into_iter().map(|s| s.segment.0));
            if !page.more {
                break;
            }
        }
        self.account.restore_history(key, &segments)
    }

    /// Uploads the messages stored since the last history segment, if the account backs its
    /// history up. A device whose key is not the account's leaves it to those that hold it;
    /// a user over the server's quota stops backing up new messages.
    pub async fn upload_history(&mut self) -> Result<(), CoreError> {
        while let Some((upload, done)) = self.account.next_history_segment()? {
            match self
                .transport()
                .post_no_content("/v1/recovery/history", &upload)
                .await
            {
                Ok(()) => self.account.history_uploaded(&done)?,
                // Not the account's key, or the server's quota for history is used up: the
                // messages stay on this device; syncing goes on.
                Err(e)
                    if matches!(
                        e.server_code(),
                        Some(ErrorCode::RecoveryRefused | ErrorCode::QuotaExceeded)
                    ) =>
                {
                    break
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Publishes a device list naming this device alone, then takes the others off the
    /// server. Returns how many were taken off.
    async fn replace_lost_devices(&mut self) -> Result<usize, CoreError> {
        let address = self.account.address().to_owned();
        let own = self.account.device_id();
        let user = self.fetch_user(&address).await?;
        // Every device the server or our signed list still names, but this one.
        let listed = self
            .account
            .pinned_list(&address)?
            .map(|l| l.devices)
            .unwrap_or_default();
        let lost: Vec<String> = user
            .devices
            .iter()
            .map(|d| d.device_id.clone())
            .chain(listed.iter().map(|d| hex::encode(d.device_id)))
            .filter(|d| *d != own)
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        let this = [self.account.listed_self()];
        self.publish_device_list(&this, &this, &lost).await?;
        let mut revoked = 0;
        for device in user.devices.iter().filter(|d| d.device_id != own) {
            self.transport()
                .delete(&format!("/v1/devices/{}", device.device_id))
                .await?;
            revoked += 1;
        }
        Ok(revoked)
    }

    /// Rejoins the conversations of the backup not rejoined yet, by external commit, and
    /// removes the lost devices from each.
    pub(super) async fn rejoin_all(&mut self, recovered: &mut Recovered) -> Result<(), CoreError> {
        for record in self.account.to_rejoin()? {
            match self.rejoin(&record.id).await {
                Ok(()) => {
                    self.account.rejoined(&record)?;
                    recovered.rejoined += 1;
                    let lost = self.account.other_own_devices(&record.id)?;
                    if !lost.is_empty() {
                        self.commit_with(&record.id, &[], &lost).await?;
                    }
                }
                Err(e @ CoreError::Network(_)) => return Err(e),
                Err(e) => {
                    self.record_refusal(&e);
                    self.account.forget_rejoin(&record.id)?;
                    recovered.failed.push((record.id.clone(), e.to_string()));
                }
            }
        }
        Ok(())
    }

    /// One external join, tried again after a lost epoch race or once the members' users are
    /// looked up.
    async fn rejoin(&mut self, conversation: &str) -> Result<(), CoreError> {
        let group_id = B64::encode(&hex::decode(conversation).map_err(CoreError::storage)?);
        for _ in 0..MAX_ATTEMPTS {
            let info: GroupInfoResponse = self
                .transport()
                .get(&format!("/v1/groups/{group_id}/group-info"))
                .await?;
            let (_, request) = match self
                .account
                .rejoin(conversation, info.group_info.as_bytes())
            {
                Err(CoreError::NeedContacts(users)) => {
                    for user in users {
                        self.fetch_user(&user).await?;
                    }
                    continue;
                }
                other => other?,
            };
            match self
                .transport()
                .post::<_, CommitResponse>(&format!("/v1/groups/{group_id}/commits"), &request)
                .await
            {
                Ok(_) => return Ok(()),
                Err(e) => {
                    self.account.rejoin_refused(conversation)?;
                    if e.server_code() != Some(ErrorCode::StaleEpoch) {
                        return Err(e);
                    }
                }
            }
        }
        Err(CoreError::Usage(format!(
            "gave up rejoining {conversation} after {MAX_ATTEMPTS} tries"
        )))
    }
}
