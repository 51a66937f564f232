//! The network client: the flows that carry the account's requests to a Missive server and
//! apply its answers (registration, sync, conversations, commits and sends retried after a
//! lost epoch race, revocation), over the HTTP and WebSocket plumbing of `transport.rs`.

use missive_proto::api::*;
use missive_proto::app::{AppBody, AppMessage};
use missive_proto::{ErrorCode, B64};
use openmls::prelude::KeyPackage;

use crate::account::{Account, Outcome, KEY_PACKAGE_LOW, KEY_PACKAGE_STOCK};
use crate::error::CoreError;
use crate::store::{AccountStore, ConversationRecord, MessageRecord};

#[path = "client_calls.rs"]
mod calls;
#[path = "client_changes.rs"]
mod changes;
#[path = "client_link.rs"]
mod link;
#[path = "client_recovery.rs"]
mod recovery;
#[path = "transfer.rs"]
mod transfer;
#[cfg(not(target_arch = "wasm32"))]
#[path = "transfer_disk.rs"]
mod transfer_disk;
#[path = "transport.rs"]
mod transport;
#[path = "client_trust.rs"]
mod trust;
pub use calls::{call_message, new_call_id, JoinedCall, OngoingCall};
pub use changes::{parse_timer, timer_name, TIMERS};
pub use link::{Joined, Linked};
pub use recovery::Recovered;
pub use transfer::{
    media_type, Destination, FileSource, MemoryFile, Progress, SentFile, PIECE_CHUNKS,
};
#[cfg(not(target_arch = "wasm32"))]
pub use transfer_disk::DiskFile;
use transport::http_client;
use transport::network;
pub use transport::{sleep, Barrier, PushConnection, Transport};

/// Attempts at a commit or send that keeps losing epoch races before giving up.
const MAX_ATTEMPTS: usize = 8;
/// Rounds of fetching unknown contacts while processing one event.
const MAX_CONTACT_ROUNDS: usize = 3;

/// An account connected to its server.
pub struct Client {
    pub account: Account,
    http: reqwest::Client,
    /// Run before every request (see [`Barrier`]); none where the store is durable at once.
    barrier: Option<Barrier>,
    /// Whether this process already checked the server's stock of our key packages.
    stock_checked: bool,
    /// One-time key packages to keep on the server.
    stock: usize,
}

/// One of this user's devices as the server lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceStatus {
    pub id: String,
    /// This device.
    pub current: bool,
    /// Its certificate is signed by our identity key; a device that is not was never linked by
    /// us, and no client of ours will use it.
    pub certified: bool,
    /// When its certificate was issued (seconds since the Unix epoch; 0 if unreadable).
    pub issued_at: u64,
    /// It is on our signed device list: other users' clients add it to conversations.
    pub listed: bool,
    /// The version of that list (0: none published yet).
    pub list_version: u64,
}

/// How a commit went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CommitOutcome {
    /// 1 when the first try was accepted; more after lost epoch races.
    pub attempts: usize,
    pub epoch: u64,
}

/// The body of a text message (answering `reply_to`, if given); an empty (or blank) one is
/// refused, not sent.
fn text_body(text: &str, reply_to: Option<&str>) -> Result<AppBody, CoreError> {
    if text.trim().is_empty() {
        return Err(CoreError::Usage("an empty message is not sent".into()));
    }
    Ok(AppBody::Text {
        text: text.to_owned(),
        reply_to: reply_to.map(str::to_owned),
    })
}

impl Client {
    /// Registers a new account in `store` and uploads its first key packages.
    pub async fn register(
        store: Box<dyn AccountStore + Send>,
        server: &str,
        address: &str,
        invite: Option<String>,
    ) -> Result<Client, CoreError> {
        Self::register_with_stock(store, server, address, invite, KEY_PACKAGE_STOCK).await
    }

    /// Registers keeping `stock` one-time key packages on the server instead of the default
    /// (load generators register thousands of devices).
    pub async fn register_with_stock(
        store: Box<dyn AccountStore + Send>,
        server: &str,
        address: &str,
        invite: Option<String>,
        stock: usize,
    ) -> Result<Client, CoreError> {
        Self::register_inner(store, server, address, invite, stock, None).await
    }

    /// Registers with a [`Barrier`] run before every request (the browser's store).
    pub async fn register_with_barrier(
        store: Box<dyn AccountStore + Send>,
        server: &str,
        address: &str,
        invite: Option<String>,
        barrier: Barrier,
    ) -> Result<Client, CoreError> {
        Self::register_inner(
            store,
            server,
            address,
            invite,
            KEY_PACKAGE_STOCK,
            Some(barrier),
        )
        .await
    }

    async fn register_inner(
        store: Box<dyn AccountStore + Send>,
        server: &str,
        address: &str,
        invite: Option<String>,
        stock: usize,
        barrier: Option<Barrier>,
    ) -> Result<Client, CoreError> {
        let server = crate::lookup::server_url(server)?;
        let address = crate::lookup::address(address)?;
        let (account, request) = Account::create(store, &address, &server, invite)?;
        let mut client = Client {
            account,
            http: http_client()?,
            barrier,
            stock_checked: false,
            stock,
        };
        let response: RegisterResponse = client.transport().post("/v1/register", &request).await?;
        client.account.finish_registration(&response)?;
        client.ensure_key_packages().await?;
        // Listed once its key packages are up: nobody can claim a package it lacks.
        client.ensure_device_list().await?;
        client
            .account
            .set_recovery_key(&crate::recovery::RecoveryKey::generate())?;
        client.upload_backup(true).await?;
        Ok(client)
    }

    /// Opens the account in `store`.
    pub fn open(store: Box<dyn AccountStore + Send>) -> Result<Client, CoreError> {
        let account = Account::open(store)?.ok_or_else(|| {
            CoreError::Usage("no account here: run `missive register` first".into())
        })?;
        Ok(Client {
            account,
            http: http_client()?,
            barrier: None,
            stock_checked: false,
            stock: KEY_PACKAGE_STOCK,
        })
    }

    /// Runs `barrier` before every request from now on (see [`Barrier`]).
    pub fn set_barrier(&mut self, barrier: Barrier) {
        self.barrier = Some(barrier);
    }

    /// The HTTP transport with this account's server and token.
    pub fn transport(&self) -> Transport {
        Transport {
            http: self.http.clone(),
            server: self.account.server().to_owned(),
            token: self.account.token().to_owned(),
            barrier: self.barrier.clone(),
        }
    }

    /// Tops the server's stock of this device's key packages up when it runs low.
    pub async fn ensure_key_packages(&mut self) -> Result<(), CoreError> {
        self.stock_checked = true;
        let count: KeyPackageCount = self.transport().get("/v1/key-packages/count").await?;
        let low = (KEY_PACKAGE_LOW as usize).min(self.stock);
        if count.count as usize >= low && count.last_resort {
            return Ok(());
        }
        let missing = self.stock.saturating_sub(count.count as usize);
        let request = self.account.new_key_packages(missing, !count.last_resort)?;
        // Keep the private keys before the server can hand the packages out.
        self.account.save()?;
        let _: KeyPackageCount = self.transport().post("/v1/key-packages", &request).await?;
        Ok(())
    }

    /// Looks a user up (with an owned transport, so that no borrow of the client is held across
    /// the request).
    async fn lookup_user(
        transport: Transport,
        address: &str,
        since: u64,
    ) -> Result<UserResponse, CoreError> {
        let path = format!("/v1/users/{address}?since={since}");
        let user: UserResponse = match transport.get(&path).await {
            Ok(user) => user,
            Err(e) => {
                return Err(match e.server_code() {
                    Some(ErrorCode::NotFound) => CoreError::UnknownUser(address.to_owned()),
                    Some(ErrorCode::DomainNotAllowed) => CoreError::Usage(format!(
                        "{address} is not reachable from this server: it does not serve the \
                         domain {}",
                        address.split_once('@').map_or(address, |(_, d)| d)
                    )),
                    _ => e,
                })
            }
        };
        if user.address != address {
            return Err(CoreError::Usage(format!(
                "the server answered for {} instead of {address}",
                user.address
            )));
        }
        Ok(user)
    }

    /// Fetches a user's identity key and pins it (trust on first use; a change is refused and
    /// blocks sending to that user until accepted).
    pub async fn fetch_user(&mut self, address: &str) -> Result<UserResponse, CoreError> {
        let user = self.lookup_checked(address).await?;
        if let Err(e) = self.account.pin(&user) {
            self.record_refusal(&e);
            return Err(e);
        }
        Ok(user)
    }

    /// Keeps a security refusal that ends a command among the alerts too, so that `alerts`
    /// shows it later (not only the command's error).
    fn record_refusal(&mut self, e: &CoreError) {
        if let CoreError::Refused(alert) = e {
            let _ = self.account.record_alert(alert);
        }
    }

    /// Processes events in order (one save for the lot), fetching unknown contacts as needed.
    pub async fn process_events(&mut self, events: &[Event]) -> Result<Vec<Outcome>, CoreError> {
        self.account.begin_list_checks();
        let start = self.account.cursor();
        let mut rounds = 0;
        let mut rest = std::borrow::Cow::Borrowed(events);
        loop {
            match self.account.process_events(&rest) {
                Err(CoreError::NeedContacts(addresses)) if rounds < MAX_CONTACT_ROUNDS => {
                    rounds += 1;
                    for a in addresses {
                        self.fetch_user(&a).await?;
                    }
                    // What the round before processed and saved is not offered again: only
                    // the events past the cursor, and those that came in below it.
                    let cursor = self.account.cursor();
                    rest = rest
                        .iter()
                        .filter(|e| e.id <= start || e.id > cursor)
                        .cloned()
                        .collect::<Vec<_>>()
                        .into();
                }
                Ok(mut outcomes) => {
                    self.after_events(&mut outcomes).await?;
                    return Ok(outcomes);
                }
                other => return other,
            }
        }
    }

    /// What follows every batch of events: the log heads other members passed on are
    /// compared with the log the server shows us (alerts added to `outcomes`), and the
    /// recovery backup and history follow what changed. A network failure leaves them for
    /// the next batch.
    async fn after_events(&mut self, outcomes: &mut Vec<Outcome>) -> Result<(), CoreError> {
        self.erase_expired()?;
        match self.check_gossip().await {
            Ok(alerts) => outcomes.extend(alerts.into_iter().map(Outcome::Alert)),
            Err(CoreError::Network(_)) => {}
            Err(e) => return Err(e),
        }
        for upload in [self.upload_backup(false).await, self.upload_history().await] {
            match upload {
                Ok(()) | Err(CoreError::Network(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Fetches and processes every event after the cursor; acknowledges them.
    pub async fn sync(&mut self) -> Result<Vec<Outcome>, CoreError> {
        let mut outcomes = Vec::new();
        self.erase_expired()?;
        let start = self.account.cursor();
        loop {
            let page: EventsResponse = self
                .transport()
                .get(&format!("/v1/events?after={}", self.account.cursor()))
                .await?;
            outcomes.extend(self.process_events(&page.events).await?);
            if !page.more || page.events.is_empty() {
                break;
            }
        }
        if self.account.cursor() > start {
            let cursor = self.account.cursor();
            self.transport()
                .post_no_content("/v1/events/ack", &AckRequest { cursor })
                .await?;
        }
        let first = !self.stock_checked;
        if first {
            // Once per process: the organisation's rules (retention, labels).
            match self.refresh_policy().await {
                Ok(()) | Err(CoreError::Network(_)) => {}
                Err(e) => return Err(e),
            }
        }
        if first || outcomes.iter().any(|o| matches!(o, Outcome::Joined(_))) {
            self.ensure_key_packages().await?;
            self.ensure_device_list().await?;
        }
        if first {
            // Once per process: what the log holds in our name.
            match self.watch_own_entries().await {
                Ok(alerts) => outcomes.extend(alerts.into_iter().map(Outcome::Alert)),
                Err(CoreError::Network(_)) => {}
                Err(e) => return Err(e),
            }
            // A recovery interrupted before it rejoined everything goes on.
            if !self.account.to_rejoin()?.is_empty() {
                Box::pin(self.rejoin_all(&mut Recovered::default())).await?;
            }
        }
        let joined: Vec<String> = outcomes
            .iter()
            .filter_map(|o| match o {
                Outcome::Joined(c) => Some(c.clone()),
                _ => None,
            })
            .collect();
        if !joined.is_empty() {
            // Boxed: adding commits, and a commit may sync first.
            match Box::pin(self.add_own_devices(&joined)).await {
                // The events are processed and stored; the next join tries again.
                Ok(()) | Err(CoreError::Network(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(outcomes)
    }

    /// Every device of ours belongs in every conversation we are in. Whoever added us added the
    /// devices on our signed list as they knew it; any listed device of ours that is missing
    /// (linked meanwhile, or hidden from that user's claim) is added here.
    async fn add_own_devices(&mut self, conversations: &[String]) -> Result<(), CoreError> {
        // One lookup of our own list for all the conversations.
        self.account.begin_list_checks();
        let certified: Vec<String> = self
            .devices()
            .await?
            .into_iter()
            .filter(|d| d.listed)
            .map(|d| d.id)
            .collect();
        let address = self.account.address().to_owned();
        for conversation in conversations {
            let present = self.account.own_devices_in(conversation)?;
            if certified.iter().all(|d| present.contains(d)) {
                continue;
            }
            // One package per device of ours; the commit adds only the missing ones.
            let packages = self.claim_fetched(&address).await?;
            self.commit_with(conversation, &packages, &[]).await?;
            self.send_meta(conversation).await?;
        }
        Ok(())
    }

    /// Creates a conversation with `members` (addresses other than ours).
    pub async fn create_conversation(
        &mut self,
        name: Option<String>,
        dm_peer: Option<String>,
        members: &[String],
    ) -> Result<String, CoreError> {
        let mut key_packages = Vec::new();
        for m in members {
            if m == self.account.address() {
                return Err(CoreError::Usage(
                    "you are a member of your own conversations already".into(),
                ));
            }
            key_packages.extend(self.claim(m).await?);
        }
        key_packages.extend(self.claim_own_devices().await?);
        let (conversation, request) = self.account.create_group(name.clone(), dm_peer.clone())?;
        match self
            .transport()
            .post::<_, GroupResponse>("/v1/groups", &request)
            .await
        {
            Ok(_) => self.account.save()?,
            Err(e) => {
                self.account.rollback()?;
                return Err(e);
            }
        }
        if !key_packages.is_empty() {
            self.commit_with(&conversation, &key_packages, &[]).await?;
        }
        self.send_body(
            &conversation,
            AppBody::Meta {
                name,
                dm: dm_peer.is_some(),
                timer: None,
                label: None,
            },
        )
        .await?;
        match self.upload_backup(false).await {
            Ok(()) | Err(CoreError::Network(_)) => {}
            Err(e) => return Err(e),
        }
        Ok(conversation)
    }

    /// Sends a text in the one-to-one conversation with `peer`, creating it on first use.
    pub async fn dm(&mut self, peer: &str, text: &str) -> Result<MessageRecord, CoreError> {
        text_body(text, None)?;
        let conversation = match self.account.store().dm_with(peer)? {
            Some(c) => c.id,
            None => {
                self.create_conversation(None, Some(peer.to_owned()), &[peer.to_owned()])
                    .await?
            }
        };
        self.send_text(&conversation, text).await
    }

    /// Adds users (all their devices) to a conversation.
    pub async fn add_members(
        &mut self,
        conversation: &str,
        users: &[String],
    ) -> Result<CommitOutcome, CoreError> {
        let members = self.account.members(conversation)?;
        if let Some(present) = users.iter().find(|u| members.contains(u)) {
            return Err(CoreError::Usage(format!(
                "{present} is already a member of this conversation"
            )));
        }
        if let Some(label) = self.conversation(conversation)?.label {
            if let Some(outsider) = users.iter().find(|u| !label.admits(u)) {
                return Err(CoreError::Usage(format!(
                    "the conversation is labelled {:?}, which admits members from {} only: \
                     {outsider} cannot be added",
                    label.name,
                    label.domains.join(", ")
                )));
            }
        }
        let mut key_packages = Vec::new();
        for u in users {
            key_packages.extend(self.claim(u).await?);
        }
        let outcome = self.commit_with(conversation, &key_packages, &[]).await?;
        self.send_meta(conversation).await?;
        Ok(outcome)
    }

    /// Tells the conversation's members (the ones just added) what it is: its name, and
    /// whether it is one to one.
    async fn send_meta(&mut self, conversation: &str) -> Result<(), CoreError> {
        let record = self.conversation(conversation)?;
        self.send_body(
            conversation,
            AppBody::Meta {
                name: record.name,
                dm: record.dm_peer.is_some(),
                timer: record.disappear,
                label: record.label,
            },
        )
        .await?;
        Ok(())
    }

    /// Removes users (all their devices) from a conversation.
    pub async fn remove_members(
        &mut self,
        conversation: &str,
        users: &[String],
    ) -> Result<CommitOutcome, CoreError> {
        let members = self.account.members(conversation)?;
        let absent: Vec<&str> = users
            .iter()
            .filter(|u| !members.contains(u))
            .map(String::as_str)
            .collect();
        if !absent.is_empty() {
            return Err(CoreError::Usage(format!(
                "{} is not a member of this conversation",
                absent.join(", ")
            )));
        }
        self.commit_with(conversation, &[], users).await
    }

    /// Rotates this device's keys in a conversation (an empty commit with a path update).
    pub async fn update_keys(&mut self, conversation: &str) -> Result<CommitOutcome, CoreError> {
        self.commit_with(conversation, &[], &[]).await
    }

    fn conversation(&self, conversation: &str) -> Result<ConversationRecord, CoreError> {
        self.account
            .store()
            .conversation(conversation)?
            .ok_or_else(|| CoreError::Usage(format!("no conversation {conversation}")))
    }

    /// Commits; when another member won the epoch, processes the winner and tries again.
    async fn commit_with(
        &mut self,
        conversation: &str,
        add: &[KeyPackage],
        remove: &[String],
    ) -> Result<CommitOutcome, CoreError> {
        self.conversation(conversation)?;
        // A commit staged before a crash or a lost answer may have been accepted: learn that
        // first (its echo merges it), rather than replace it with a second, different commit
        // for the same epoch.
        if self.account.has_pending_commit(conversation)? {
            self.sync().await?;
        }
        for attempt in 1..=MAX_ATTEMPTS {
            let prepared = self.account.prepare_commit(conversation, add, remove)?;
            let path = format!("/v1/groups/{}/commits", B64::encode(&prepared.group_id));
            match self
                .transport()
                .post::<_, CommitResponse>(&path, &prepared.request)
                .await
            {
                Ok(accepted) => {
                    self.account.commit_accepted(conversation)?;
                    return Ok(CommitOutcome {
                        attempts: attempt,
                        epoch: accepted.epoch,
                    });
                }
                Err(e) if e.server_code() == Some(ErrorCode::StaleEpoch) => {
                    self.account.commit_refused(conversation)?;
                    self.sync().await?;
                }
                // No answer: the server may have accepted it. Keep it staged; the next sync
                // merges it if so, and the next commit starts by finding out.
                Err(e @ CoreError::Network(_)) => return Err(e),
                Err(e) => {
                    self.account.commit_refused(conversation)?;
                    return Err(e);
                }
            }
        }
        Err(CoreError::Usage(format!(
            "gave up after losing {MAX_ATTEMPTS} epoch races in a row; try again"
        )))
    }

    /// Sends a text message.
    pub async fn send_text(
        &mut self,
        conversation: &str,
        text: &str,
    ) -> Result<MessageRecord, CoreError> {
        let (record, _) = self.send_body(conversation, text_body(text, None)?).await?;
        record.ok_or_else(|| CoreError::Mls("a text message left no record".into()))
    }

    /// Sends a text message answering message `reply_to` of the same conversation.
    pub async fn send_reply(
        &mut self,
        conversation: &str,
        reply_to: &str,
        text: &str,
    ) -> Result<MessageRecord, CoreError> {
        let answered = crate::lookup::message(self.account.store(), reply_to)?;
        if answered.conversation != conversation {
            return Err(CoreError::Usage(format!(
                "message {reply_to} is in another conversation"
            )));
        }
        let body = text_body(text, Some(&answered.id))?;
        let (record, _) = self.send_body(conversation, body).await?;
        record.ok_or_else(|| CoreError::Mls("a reply left no record".into()))
    }

    /// Sends a text message, and if the server cannot be reached, sends it again (re-encrypted,
    /// same message id) until it is accepted or `patience` has passed. A message whose answer
    /// was lost may thus reach the server twice; receivers show it once.
    pub async fn send_text_patiently(
        &mut self,
        conversation: &str,
        text: &str,
        patience: std::time::Duration,
    ) -> Result<MessageRecord, CoreError> {
        let body = text_body(text, None)?;
        let deadline = web_time::Instant::now() + patience;
        let (record, _) = self
            .send_message(
                conversation,
                crate::account::new_message(body),
                Some(deadline),
            )
            .await?;
        record.ok_or_else(|| CoreError::Mls("a text message left no record".into()))
    }

    /// Sends a message of any kind; returns its record (none for a body that is not shown as
    /// a message of its own, such as the conversation's metadata) and the message as sent.
    pub async fn send_body(
        &mut self,
        conversation: &str,
        body: AppBody,
    ) -> Result<(Option<MessageRecord>, AppMessage), CoreError> {
        self.send_message(conversation, crate::account::new_message(body), None)
            .await
    }

    /// Sends `message`, re-encrypting it after a lost epoch race, and after a network failure
    /// until `network_deadline` (never, if `None`).
    pub(crate) async fn send_message(
        &mut self,
        conversation: &str,
        message: AppMessage,
        network_deadline: Option<web_time::Instant>,
    ) -> Result<(Option<MessageRecord>, AppMessage), CoreError> {
        let mut races = 0;
        let mut pause = std::time::Duration::from_millis(50);
        while races < MAX_ATTEMPTS {
            let encrypted = self
                .account
                .encrypt_messages(conversation, vec![message.clone()]);
            if let Err(e) = &encrypted {
                // A refusal to send (a member's key changed, a device uncertified) is kept
                // among the alerts, not only returned.
                self.record_refusal(e);
            }
            let (group_id, request, message) = encrypted?
                .pop()
                .ok_or_else(|| CoreError::Mls("nothing was encrypted".into()))?;
            let path = format!("/v1/groups/{}/messages", B64::encode(&group_id));
            match self
                .transport()
                .post::<_, SendResponse>(&path, &request)
                .await
            {
                Ok(accepted) => {
                    let record = self.account.sent(conversation, &message, &accepted)?;
                    return Ok((record, message));
                }
                Err(e) if e.server_code() == Some(ErrorCode::StaleEpoch) => {
                    races += 1;
                    self.sync().await?;
                }
                Err(CoreError::Network(_))
                    if network_deadline.is_some_and(|d| web_time::Instant::now() < d) =>
                {
                    sleep(pause).await;
                    pause = (pause * 2).min(std::time::Duration::from_secs(1));
                }
                Err(e) => return Err(e),
            }
        }
        Err(CoreError::Usage(
            "the conversation keeps changing; try again".into(),
        ))
    }

    /// Encrypts texts for a conversation (one durable save for all); post each with
    /// [`Transport::post_prepared`] (several may be in flight), then record them with
    /// [`Client::record_sent`]. Keep at most [`crate::account::MAX_UNACCEPTED_SENDS`] messages
    /// encrypted and not yet accepted, or receivers may be unable to read a late one.
    pub fn prepare_texts(
        &mut self,
        conversation: &str,
        texts: &[String],
    ) -> Result<Vec<PreparedSend>, CoreError> {
        let bodies = texts
            .iter()
            .map(|text| AppBody::Text {
                text: text.clone(),
                reply_to: None,
            })
            .collect();
        Ok(self
            .account
            .encrypt_many(conversation, bodies)?
            .into_iter()
            .map(|(group_id, request, message)| PreparedSend {
                conversation: conversation.to_owned(),
                path: format!("/v1/groups/{}/messages", B64::encode(&group_id)),
                request,
                message,
            })
            .collect())
    }

    /// Records posted messages as sent, with one save.
    pub fn record_sent(
        &mut self,
        sent: &[(PreparedSend, SendResponse)],
    ) -> Result<Vec<Option<MessageRecord>>, CoreError> {
        let items: Vec<_> = sent
            .iter()
            .map(|(p, a)| (p.conversation.as_str(), &p.message, a))
            .collect();
        self.account.sent_many(&items)
    }

    /// Opens the push channel, delivering events after the current cursor.
    pub async fn connect_push(&self) -> Result<PushConnection, CoreError> {
        PushConnection::open(
            self.account.server(),
            self.account.token(),
            self.account.cursor(),
        )
        .await
    }
}

/// An encrypted message ready to post.
pub struct PreparedSend {
    pub conversation: String,
    path: String,
    request: SendRequest,
    pub message: AppMessage,
}

/// Compile-time check: the client's futures can be spawned on a multi-threaded runtime (in a
/// browser, where there is one thread, they are not `Send`: reqwest's `fetch` futures hold
/// JavaScript values).
#[cfg(not(target_arch = "wasm32"))]
#[allow(dead_code)]
fn client_futures_are_send(client: &mut Client, events: &[Event]) {
    fn send<T: Send>(_: T) {}
    send(client.process_events(events));
    send(client.sync());
    send(client.fetch_user("a@b"));
    send(client.send_text("c", "t"));
    send(client.add_members("c", &[]));
    send(client.accept_new_key("a@b"));
    send(client.send_file("c", std::path::Path::new("f"), None));
    send(client.receive_file("f", Destination::App, |_| Ok(()), None));
}
