//! Linking a device over the server's relay (`/v1/links`): the linking side ([`Client::link`])
//! and the new device's side ([`Client::join`]). The steps, each sealed under the link code:
//!
//! 1. the new device offers its key;
//! 2. the linking device certifies it (the server registers the device) and grants it the
//!    identity key and the contacts;
//! 3. the new device sends one key package per conversation;
//! 4. the linking device adds it to every conversation, catches up, and sends the history.
//!
//! The history is sent after the adds, so that every message is either in it or readable by
//! the new device as a member; a message in both is stored once.

use std::time::Duration;

use missive_proto::api::{
    ClaimedKeyPackage, CreateLinkRequest, LinkGrantRequest, LinkGrantStatus, LinkHistoryStatus,
    LinkSealed, LinkStatus,
};
use missive_proto::B64;

use missive_proto::cert::DeviceCertificate;
use missive_proto::devicelist::ListedDevice;

use super::{http_client, Client, Transport, KEY_PACKAGE_STOCK};
use crate::account::Account;
use crate::error::CoreError;
use crate::link::{Grant, History, Kind, LinkCode, Offer, Packages};
use crate::store::AccountStore;

/// The most sealed history a link carries: the server takes 48 MiB of JSON, which holds 32 MiB
/// in base64 with room to spare.
const MAX_HISTORY_SEALED: usize = 32 << 20;
/// How often each side looks at the relay while waiting.
const POLL: Duration = Duration::from_millis(250);

/// What a link did, seen from the linking device.
#[derive(Clone, Debug)]
pub struct Linked {
    pub device_id: String,
    /// Conversations the new device was added to.
    pub conversations: usize,
    /// Messages handed over as history.
    pub messages: usize,
}

/// What a join did, seen from the new device.
pub struct Joined {
    pub client: Client,
    pub conversations: usize,
    pub messages: usize,
}

fn channel_path(code: &LinkCode) -> String {
    format!("/v1/links/{}", crate::hex(&code.channel()))
}

fn timed_out(what: &str) -> CoreError {
    CoreError::Usage(format!(
        "{what}; the link code expired. Run `missive link` again for a new code"
    ))
}

/// Waits until `poll` yields something, up to `deadline`.
async fn wait_for<T, F, Fut>(
    deadline: web_time::Instant,
    what: &str,
    mut poll: F,
) -> Result<T, CoreError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Option<T>, CoreError>>,
{
    loop {
        if let Some(v) = poll().await? {
            return Ok(v);
        }
        if web_time::Instant::now() + POLL > deadline {
            return Err(timed_out(what));
        }
        super::sleep(POLL).await;
    }
}

impl Client {
    /// Links a new device to this account. `show` receives the code once the relay channel is
    /// open; the call returns when the new device is in every conversation and has the
    /// history of the last `history` (or fails after `timeout`).
    pub async fn link(
        &mut self,
        timeout: Duration,
        history: Duration,
        show: impl FnOnce(&LinkCode),
    ) -> Result<Linked, CoreError> {
        self.link_unless(timeout, history, show, || false).await
    }

    /// [`Client::link`], given up as soon as `cancelled()` says so while no device has used
    /// the code yet (later, the link goes through or is undone: a device half-linked is
    /// revoked).
    pub async fn link_unless(
        &mut self,
        timeout: Duration,
        history: Duration,
        show: impl FnOnce(&LinkCode),
        cancelled: impl Fn() -> bool,
    ) -> Result<Linked, CoreError> {
        let deadline = web_time::Instant::now() + timeout;
        let code = LinkCode::generate();
        let path = channel_path(&code);
        let transport = self.transport();
        transport
            .post_no_content(
                "/v1/links",
                &CreateLinkRequest {
                    channel: crate::hex(&code.channel()),
                    ttl_secs: timeout.as_secs().clamp(1, 900),
                },
            )
            .await?;
        show(&code);

        let offer = wait_for(deadline, "no device used the link code in time", || async {
            if cancelled() {
                return Err(CoreError::Usage("the link was cancelled".into()));
            }
            let status: LinkStatus = transport.get(&path).await?;
            Ok(status.offer)
        })
        .await?;
        let offer: Offer = code.open_json(Kind::Offer, offer.as_bytes())?;
        let cert = self.account.certify_offer(&offer)?;
        let conversations: Vec<String> = self
            .account
            .store()
            .conversations()?
            .into_iter()
            .filter(|c| !c.left)
            .map(|c| c.id)
            .collect();
        let grant = self.account.grant(&cert, conversations.len() as u32)?;
        transport
            .post_no_content(
                &format!("{path}/grant"),
                &LinkGrantRequest {
                    device_certificate: B64(cert.to_bytes()),
                    sealed: B64(code.seal_json(Kind::Grant, &grant)?),
                },
            )
            .await?;

        let device_id = offer.device_id;
        let added = self
            .add_linked_device(&code, &cert, &conversations, history, deadline)
            .await;
        match added {
            Ok(messages) => Ok(Linked {
                device_id,
                conversations: conversations.len(),
                messages,
            }),
            // The new device is registered and may be in some conversations already: take it
            // out again rather than leave it half linked.
            Err(e) => match (self.revoke_device(&device_id).await, e) {
                (_, e @ CoreError::Refused(_)) => Err(e),
                (Ok(_), e) => Err(CoreError::Usage(format!(
                    "{e}; the half-linked device was revoked: run `missive link` again"
                ))),
                (Err(_), e) => Err(e),
            },
        }
    }

    /// After the grant: adds the new device to every conversation with the key packages it
    /// sends, catches up, and sends the history. Returns the messages handed over.
    async fn add_linked_device(
        &mut self,
        code: &LinkCode,
        cert: &DeviceCertificate,
        conversations: &[String],
        history: Duration,
        deadline: web_time::Instant,
    ) -> Result<usize, CoreError> {
        let path = channel_path(code);
        let device_id = cert.device_id_hex();
        let device_id = device_id.as_str();
        let transport = self.transport();
        let packages = wait_for(
            deadline,
            "the new device did not send its key packages in time",
            || async {
                let status: LinkStatus = transport.get(&path).await?;
                Ok(status.packages)
            },
        )
        .await?;
        let packages: Packages = code.open_json(Kind::Packages, packages.as_bytes())?;
        let claimed: Vec<ClaimedKeyPackage> = packages
            .key_packages
            .into_iter()
            .map(|key_package| ClaimedKeyPackage {
                device_id: device_id.to_owned(),
                key_package,
            })
            .collect();
        if claimed.len() < conversations.len() {
            return Err(CoreError::refused(
                crate::AlertCode::ForgedLink,
                "the new device sent fewer key packages than there are conversations",
            ));
        }
        // The new device uploaded its stock before sending these: it goes on our signed list
        // now, and from then on anyone's claim of our devices includes it.
        self.publish_device_list(&[], &[ListedDevice::of(cert)], &[])
            .await?;
        let address = self.account.address().to_owned();
        let (packages, alerts) = self.account.verify_claimed(&address, &claimed, false)?;
        if let Some(alert) = alerts.into_iter().next() {
            return Err(CoreError::Refused(alert));
        }
        for (conversation, package) in conversations.iter().zip(packages) {
            self.commit_with(conversation, &[package], &[]).await?;
        }
        // Everything up to the adds goes into the history; everything after, the new device
        // reads as a member.
        self.sync().await?;
        let since = crate::now_ms().saturating_sub(history.as_millis() as u64);
        let mut history = self.account.history_since(since)?;
        // Within the relay's limit, the most recent messages go.
        let sealed = loop {
            let sealed = code.seal_json(Kind::History, &history)?;
            if sealed.len() <= MAX_HISTORY_SEALED || !history.drop_oldest() {
                break sealed;
            }
        };
        let messages = history.message_count();
        transport
            .put_no_content(
                &format!("{path}/history"),
                &LinkSealed {
                    sealed: B64(sealed),
                },
            )
            .await?;
        Ok(messages)
    }

    /// Becomes a new device of the account that shows `code`, on `server`: stores the account
    /// in `store`, joins its conversations and stores their history.
    pub async fn join(
        store: Box<dyn AccountStore + Send>,
        server: &str,
        code: &str,
        timeout: Duration,
    ) -> Result<Joined, CoreError> {
        Self::join_with_barrier(store, server, code, timeout, None).await
    }

    /// [`Client::join`] with a [`Barrier`] run before every request (the browser's store).
    pub async fn join_with_barrier(
        store: Box<dyn AccountStore + Send>,
        server: &str,
        code: &str,
        timeout: Duration,
        barrier: Option<super::Barrier>,
    ) -> Result<Joined, CoreError> {
        let deadline = web_time::Instant::now() + timeout;
        let code = LinkCode::parse(code)?;
        if Account::is_registered(store.as_ref())? {
            // Before the offer: a code used by mistake here stays usable for the real device.
            return Err(CoreError::Usage(
                "this home already holds an account; join with a new --home".into(),
            ));
        }
        let path = channel_path(&code);
        let server = crate::lookup::server_url(server)?;
        let anonymous = Transport {
            http: http_client()?,
            server: server.clone(),
            token: String::new(),
            barrier: barrier.clone(),
        };
        let (device_key, offer) = Account::new_link_offer()?;
        let device_id = offer.device_id.clone();
        anonymous
            .put_no_content(
                &format!("{path}/offer"),
                &LinkSealed {
                    sealed: B64(code.seal_json(Kind::Offer, &offer)?),
                },
            )
            .await?;
        let granted = wait_for(
            deadline,
            "the linking device did not answer in time",
            || async {
                let status: LinkGrantStatus = anonymous.get(&format!("{path}/grant")).await?;
                Ok(status.grant)
            },
        )
        .await?;
        if granted.device_id != device_id {
            return Err(CoreError::refused(
                crate::AlertCode::ForgedLink,
                "the server registered another device than this one",
            ));
        }
        let grant: Grant = code.open_json(Kind::Grant, granted.sealed.as_bytes())?;
        let account = Account::from_grant(
            store,
            &server,
            device_key,
            &device_id,
            &grant,
            &granted.token,
        )?;
        let mut client = Client {
            account,
            http: anonymous.http.clone(),
            barrier,
            stock_checked: false,
            stock: KEY_PACKAGE_STOCK,
        };
        match client
            .finish_join(&code, grant.packages as usize, deadline)
            .await
        {
            Ok((conversations, messages)) => Ok(Joined {
                client,
                conversations,
                messages,
            }),
            Err(e @ CoreError::Refused(_)) => Err(e),
            Err(e) => Err(CoreError::Usage(format!(
                "{e}; this home now holds a device whose link did not finish: use a new --home \
                 and link again"
            ))),
        }
    }

    /// The new device's side after the grant: sends key packages, waits for the history,
    /// joins and stores it. Returns (conversations joined, messages received as history).
    async fn finish_join(
        &mut self,
        code: &LinkCode,
        packages: usize,
        deadline: web_time::Instant,
    ) -> Result<(usize, usize), CoreError> {
        let path = channel_path(code);
        // Our stock first: the linking device lists us once it has our packages below, and
        // from then on anyone may claim one of ours.
        self.ensure_key_packages().await?;
        let upload = self.account.new_key_packages(packages, false)?;
        // The private keys are kept before anyone can use the packages.
        self.account.save()?;
        let transport = self.transport();
        transport
            .put_no_content(
                &format!("{path}/packages"),
                &LinkSealed {
                    sealed: B64(code.seal_json(
                        Kind::Packages,
                        &Packages {
                            key_packages: upload.key_packages,
                        },
                    )?),
                },
            )
            .await?;
        let history = wait_for(
            deadline,
            "the linking device did not send the history in time",
            || async {
                let status: LinkHistoryStatus = transport.get(&format!("{path}/history")).await?;
                Ok(status.sealed)
            },
        )
        .await?;
        let history: History = code.open_json(Kind::History, history.as_bytes())?;
        // The Welcomes came before the history: join first, then name and fill.
        self.sync().await?;
        let conversations = self
            .account
            .store()
            .conversations()?
            .iter()
            .filter(|c| !c.left)
            .count();
        let messages = self.account.import_history(history)?;
        Ok((conversations, messages))
    }
}
