//! Missive's client engine for browsers: the flows of `missive-core` (the same code the
//! `missive` command runs) behind a small JavaScript API made with wasm-bindgen.
//!
//! An [`Engine`] is one account on one device. Its flows run one at a time, as in the
//! command-line client: each call waits for the one before it to finish (an async lock), so a
//! page may call freely, and the push loop of [`Engine::listen`] takes its turn between them.
//! Nothing here holds cryptographic logic: certificate checks, pinning, fork detection and the
//! save-before-send rule are all in `missive-core`.
//!
//! Storage (`storage.rs`): the account lives in a `JournaledStore` whose journal the page's
//! storage (`web/src/storage.ts`, IndexedDB) writes; the engine's barrier flushes it before
//! every request, so what a request depends on is on disk before it is sent (see
//! `missive_core::journal`). A reload replays it: [`Engine::open`].
//!
//! The crate is empty on other targets (the engine's native home is the `missive` command);
//! `cargo xtask wasm` lints it for wasm32.
#![cfg(target_arch = "wasm32")]

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use futures_util::lock::Mutex;
use missive_core::account::Account;
use missive_core::client::Client;
use missive_core::{AlertCode, CoreError};
use wasm_bindgen::prelude::*;

#[cfg(feature = "bench")]
mod bench;
mod bridge;
mod calls;
mod files;
mod qr;
mod storage;
mod types;
mod views;
use bridge::*;
use qr::qr_svg;
use storage::{restore, EngineStorage, Persister};
use views::*;

/// One account on this device, connected to its server.
#[wasm_bindgen]
pub struct Engine {
    client: Rc<Mutex<Client>>,
    persister: Rc<Persister>,
    address: String,
    device_id: String,
    /// Set by [`Engine::stop`]: the push loop ends at its next wake-up.
    stopping: Rc<Cell<bool>>,
    /// Set by [`Engine::cancel_link`]: a link still waiting for the new device gives up.
    cancel_link: Rc<Cell<bool>>,
    /// The call this device is in, with its media keys (`calls.rs`).
    call: Rc<RefCell<Option<calls::ActiveCall>>>,
}

#[wasm_bindgen]
impl Engine {
    /// Registers `address` on the server at `server` (`https://…`, or `http://` on a test
    /// machine) with a new identity and this first device, kept in `storage` (which must hold
    /// no account yet).
    pub async fn register(
        storage: EngineStorage,
        server: String,
        address: String,
        invite: Option<String>,
    ) -> Result<Engine, JsValue> {
        let (store, journal) = restore(&storage).await?;
        if Account::is_registered(&store).map_err(js_error)? {
            return Err(js_error(CoreError::Usage(
                "this browser already holds an account: open it instead".into(),
            )));
        }
        let persister = Persister::new(journal, storage);
        let client = Client::register_with_barrier(
            Box::new(store),
            &server,
            &address,
            invite,
            persister.barrier(),
        )
        .await
        .map_err(js_error)?;
        // Nothing is left unsaved once registration answers.
        persister.flush().await.map_err(js_error)?;
        Ok(Self::new(client, persister))
    }

    /// Becomes a new device of the account whose other device shows `code` (`missive link`
    /// or another browser's "Link a new device"), on `server`; `storage` must hold no account
    /// yet. Resolves once this device is in every conversation with its history (or fails
    /// after five minutes).
    pub async fn join(
        storage: EngineStorage,
        server: String,
        code: String,
    ) -> Result<Engine, JsValue> {
        let (store, journal) = restore(&storage).await?;
        if Account::is_registered(&store).map_err(js_error)? {
            return Err(js_error(CoreError::Usage(
                "this browser already holds an account: open it instead".into(),
            )));
        }
        let persister = Persister::new(journal, storage);
        let joined = Client::join_with_barrier(
            Box::new(store),
            &server,
            &code,
            LINK_TIMEOUT,
            Some(persister.barrier()),
        )
        .await
        .map_err(js_error)?;
        persister.flush().await.map_err(js_error)?;
        Ok(Self::new(joined.client, persister))
    }

    /// Every device lost: becomes the account of `address` on `server` again in this browser,
    /// with its recovery key (as the user typed it); `storage` must hold no account yet. The
    /// lost devices are taken off the account and every conversation is rejoined.
    pub async fn recover(
        storage: EngineStorage,
        server: String,
        address: String,
        key: String,
    ) -> Result<Engine, JsValue> {
        let key = missive_core::recovery::RecoveryKey::parse(&key).map_err(js_error)?;
        let (store, journal) = restore(&storage).await?;
        if Account::is_registered(&store).map_err(js_error)? {
            return Err(js_error(CoreError::Usage(
                "this browser already holds an account: open it instead".into(),
            )));
        }
        let persister = Persister::new(journal, storage);
        let (client, _) = Client::recover_with_barrier(
            Box::new(store),
            &server,
            &address,
            &key,
            Some(persister.barrier()),
        )
        .await
        .map_err(js_error)?;
        persister.flush().await.map_err(js_error)?;
        Ok(Self::new(client, persister))
    }

    /// The recovery key, as shown to be written down (the app shows it once, right after
    /// registering).
    #[wasm_bindgen(js_name = recoveryKey)]
    pub async fn recovery_key(&self) -> Result<Option<String>, JsValue> {
        let client = self.client.lock().await;
        Ok(client
            .account
            .recovery_key()
            .map_err(js_error)?
            .map(|k| k.display()))
    }

    /// The account kept in `storage`, or `undefined` if it holds none.
    pub async fn open(storage: EngineStorage) -> Result<Option<Engine>, JsValue> {
        let (store, journal) = restore(&storage).await?;
        if !Account::is_registered(&store).map_err(js_error)? {
            return Ok(None);
        }
        let persister = Persister::new(journal, storage);
        let mut client = Client::open(Box::new(store)).map_err(js_error)?;
        client.set_barrier(persister.barrier());
        Ok(Some(Self::new(client, persister)))
    }

    fn new(client: Client, persister: Rc<Persister>) -> Engine {
        Engine {
            address: client.account.address().to_owned(),
            device_id: client.account.device_id(),
            client: Rc::new(Mutex::new(client)),
            persister,
            stopping: Rc::new(Cell::new(false)),
            cancel_link: Rc::new(Cell::new(false)),
            call: Rc::new(RefCell::new(None)),
        }
    }

    /// Writes what is not saved yet (received messages are otherwise saved with the next
    /// request); resolves once it is on disk.
    pub async fn save(&self) -> Result<(), JsValue> {
        self.persister.flush().await.map_err(js_error)
    }

    /// This account's address (`name@domain`).
    #[wasm_bindgen(getter)]
    pub fn address(&self) -> String {
        self.address.clone()
    }

    /// This device's id (hex).
    #[wasm_bindgen(getter, js_name = deviceId)]
    pub fn device_id(&self) -> String {
        self.device_id.clone()
    }

    /// Fetches and applies what the server holds for this device; returns what happened.
    #[wasm_bindgen(unchecked_return_type = "Outcome[]")]
    pub async fn sync(&self) -> Result<JsValue, JsValue> {
        let outcomes = {
            let mut client = self.client.lock().await;
            let outcomes = client.sync().await.map_err(js_error)?;
            self.follow_call(&mut client);
            outcomes
        };
        self.save().await?;
        to_js(&outcomes.iter().map(OutcomeView::from).collect::<Vec<_>>())
    }

    /// Creates a conversation named `name` with `members` (addresses other than ours);
    /// returns its id. One member and no name is the one-to-one conversation with them: the
    /// existing one if there is one.
    #[wasm_bindgen(js_name = createConversation)]
    pub async fn create_conversation(
        &self,
        name: Option<String>,
        members: Vec<String>,
    ) -> Result<String, JsValue> {
        let members = members
            .iter()
            .map(|m| missive_core::lookup::address(m))
            .collect::<Result<Vec<_>, _>>()
            .map_err(js_error)?;
        let name = name.filter(|n| !n.trim().is_empty());
        let mut client = self.client.lock().await;
        let dm_peer = match (&name, members.as_slice()) {
            (None, [peer]) => {
                if let Some(existing) = client.account.store().dm_with(peer).map_err(js_error)? {
                    return Ok(existing.id);
                }
                Some(peer.clone())
            }
            _ => None,
        };
        let id = client
            .create_conversation(name, dm_peer, &members)
            .await
            .map_err(js_error)?;
        self.save().await?;
        Ok(id)
    }

    /// Sends `text` to `peer`, in the one-to-one conversation with them (created on first use).
    #[wasm_bindgen(unchecked_return_type = "Message")]
    pub async fn dm(&self, peer: String, text: String) -> Result<JsValue, JsValue> {
        let mut client = self.client.lock().await;
        let peer = missive_core::lookup::address(&peer).map_err(js_error)?;
        let record = client.dm(&peer, &text).await.map_err(js_error)?;
        self.save().await?;
        to_js(&MessageView::from(&record))
    }

    /// Sends `text` in `conversation`; returns the message as stored.
    #[wasm_bindgen(unchecked_return_type = "Message")]
    pub async fn send(&self, conversation: String, text: String) -> Result<JsValue, JsValue> {
        let mut client = self.client.lock().await;
        let record = client
            .send_text(&conversation, &text)
            .await
            .map_err(js_error)?;
        // Our message as stored (accepted by the server) is on disk before the call returns.
        self.save().await?;
        to_js(&MessageView::from(&record))
    }

    /// Sends `text` answering message `reply_to` of `conversation`; returns it as stored.
    #[wasm_bindgen(unchecked_return_type = "Message")]
    pub async fn reply(
        &self,
        conversation: String,
        reply_to: String,
        text: String,
    ) -> Result<JsValue, JsValue> {
        let mut client = self.client.lock().await;
        let record = client
            .send_reply(&conversation, &reply_to, &text)
            .await
            .map_err(js_error)?;
        self.save().await?;
        to_js(&MessageView::from(&record))
    }

    /// Replaces the text of one of our messages for everyone; returns it as it is now.
    #[wasm_bindgen(unchecked_return_type = "Message")]
    pub async fn edit(
        &self,
        conversation: String,
        message: String,
        text: String,
    ) -> Result<JsValue, JsValue> {
        let mut client = self.client.lock().await;
        let record = client
            .edit(&conversation, &message, &text)
            .await
            .map_err(js_error)?;
        self.save().await?;
        to_js(&MessageView::from(&record))
    }

    /// Deletes one of our messages for everyone; returns what is left of it.
    #[wasm_bindgen(js_name = deleteMessage, unchecked_return_type = "Message")]
    pub async fn delete_message(
        &self,
        conversation: String,
        message: String,
    ) -> Result<JsValue, JsValue> {
        let mut client = self.client.lock().await;
        let record = client
            .delete(&conversation, &message)
            .await
            .map_err(js_error)?;
        self.save().await?;
        to_js(&MessageView::from(&record))
    }

    /// Adds our reaction `emoji` to a message, or (`remove`) takes it back.
    #[wasm_bindgen(unchecked_return_type = "Message")]
    pub async fn react(
        &self,
        conversation: String,
        message: String,
        emoji: String,
        remove: bool,
    ) -> Result<JsValue, JsValue> {
        let mut client = self.client.lock().await;
        let record = client
            .react(&conversation, &message, &emoji, remove)
            .await
            .map_err(js_error)?;
        self.save().await?;
        to_js(&MessageView::from(&record))
    }

    /// Marks `conversation` read (a read receipt, unless they are off); returns the position.
    #[wasm_bindgen(js_name = markRead)]
    pub async fn mark_read(&self, conversation: String) -> Result<f64, JsValue> {
        let mut client = self.client.lock().await;
        let position = client.mark_read(&conversation).await.map_err(js_error)?;
        self.save().await?;
        Ok(position as f64)
    }

    /// Sets the conversation's disappearing-message timer for everyone, in seconds (`null`:
    /// off); returns the notice shown in its history.
    #[wasm_bindgen(js_name = setTimer, unchecked_return_type = "Message")]
    pub async fn set_timer(
        &self,
        conversation: String,
        seconds: Option<f64>,
    ) -> Result<JsValue, JsValue> {
        let seconds = seconds.map(|s| s.max(0.0) as u64).filter(|s| *s > 0);
        let mut client = self.client.lock().await;
        let record = client
            .set_timer(&conversation, seconds)
            .await
            .map_err(js_error)?;
        self.save().await?;
        to_js(&MessageView::from(&record))
    }

    /// The organisation's rules (the labels it defines), fetched again from the server.
    #[wasm_bindgen(unchecked_return_type = "Policy")]
    pub async fn policy(&self) -> Result<JsValue, JsValue> {
        let mut client = self.client.lock().await;
        if let Err(e) = client.refresh_policy().await {
            // Offline: the rules last received.
            if !matches!(e, CoreError::Network(_)) {
                return Err(js_error(e));
            }
        }
        self.save().await?;
        to_js(&client.account.policy().map_err(js_error)?)
    }

    /// Puts the label named `name` on the conversation for everyone (`null`: takes it off);
    /// returns the notice shown in its history.
    #[wasm_bindgen(js_name = setLabel, unchecked_return_type = "Message")]
    pub async fn set_label(
        &self,
        conversation: String,
        name: Option<String>,
    ) -> Result<JsValue, JsValue> {
        let mut client = self.client.lock().await;
        let record = client
            .set_label(&conversation, name.as_deref())
            .await
            .map_err(js_error)?;
        self.save().await?;
        to_js(&MessageView::from(&record))
    }

    /// Forwards a message to another conversation (unless a label forbids it); returns the
    /// new message.
    #[wasm_bindgen(unchecked_return_type = "Message")]
    pub async fn forward(&self, message: String, conversation: String) -> Result<JsValue, JsValue> {
        let mut client = self.client.lock().await;
        let record = client
            .forward(&message, &conversation)
            .await
            .map_err(js_error)?;
        self.save().await?;
        to_js(&MessageView::from(&record))
    }

    /// Tells the conversation's members we are typing (call it at most every few seconds).
    pub async fn typing(&self, conversation: String) -> Result<(), JsValue> {
        let mut client = self.client.lock().await;
        client.typing(&conversation).await.map_err(js_error)?;
        self.save().await
    }

    /// Whether read receipts are sent; `on` turns them on or off first.
    #[wasm_bindgen(js_name = readReceipts)]
    pub async fn read_receipts(&self, on: Option<bool>) -> Result<bool, JsValue> {
        let mut client = self.client.lock().await;
        if let Some(on) = on {
            client.account.set_read_receipts(on).map_err(js_error)?;
            self.save().await?;
        }
        client.account.read_receipts().map_err(js_error)
    }

    /// Erases the messages whose timer ran out; returns how many (the page calls it now and
    /// then, and shows the conversation again when some went).
    #[wasm_bindgen(js_name = eraseExpired)]
    pub async fn erase_expired(&self) -> Result<u32, JsValue> {
        let mut client = self.client.lock().await;
        let erased = client.erase_expired().map_err(js_error)?;
        self.save().await?;
        Ok(erased as u32)
    }

    /// The stored messages matching `text` (each word begins a word of a message or of a
    /// file's name, case and accents ignored), in `conversation` if given, newest first, at
    /// most 50. Nothing is asked of the server.
    #[wasm_bindgen(unchecked_return_type = "Message[]")]
    pub async fn search(
        &self,
        text: String,
        conversation: Option<String>,
    ) -> Result<JsValue, JsValue> {
        let Some(mut query) = missive_core::search::Query::new(&text) else {
            return to_js(&Vec::<MessageView>::new());
        };
        query.conversation = conversation;
        let client = self.client.lock().await;
        let found = client.account.store().search(&query).map_err(js_error)?;
        to_js(&found.iter().map(MessageView::from).collect::<Vec<_>>())
    }

    /// Every conversation this device is in (or was removed from).
    #[wasm_bindgen(unchecked_return_type = "Conversation[]")]
    pub async fn conversations(&self) -> Result<JsValue, JsValue> {
        let client = self.client.lock().await;
        let list = client.account.store().conversations().map_err(js_error)?;
        to_js(&list.iter().map(ConversationView::from).collect::<Vec<_>>())
    }

    /// The messages of `conversation`, oldest first: the newest `last` of them if given (a
    /// page scrolls back by asking for more), all of them otherwise.
    #[wasm_bindgen(unchecked_return_type = "Message[]")]
    pub async fn messages(
        &self,
        conversation: String,
        last: Option<u32>,
    ) -> Result<JsValue, JsValue> {
        let client = self.client.lock().await;
        let list = client
            .account
            .store()
            .messages(&conversation)
            .map_err(js_error)?;
        let from = last.map_or(0, |n| list.len().saturating_sub(n as usize));
        to_js(
            &list[from..]
                .iter()
                .map(MessageView::from)
                .collect::<Vec<_>>(),
        )
    }

    /// Listens on the push channel: every batch of events is applied, and what happened is
    /// handed to `on_outcomes(outcomes: Outcome[])`; the conversations whose call changed
    /// (someone joined or left, or it ended) to `on_calls(conversations: string[])`. Catches
    /// up first (a sync, whose outcomes are handed over too). Returns when [`Engine::stop`] is
    /// called; throws when the connection is lost (call it again to reconnect: nothing is
    /// missed, the server keeps every event until this device has it).
    pub async fn listen(
        &self,
        on_outcomes: js_sys::Function,
        on_calls: Option<js_sys::Function>,
    ) -> Result<(), JsValue> {
        self.stopping.set(false);
        let mut push = {
            let mut client = self.client.lock().await;
            let outcomes = client.sync().await.map_err(js_error)?;
            send_receipts(&mut client).await?;
            self.save().await?;
            deliver(&on_outcomes, &outcomes)?;
            client.connect_push().await.map_err(js_error)?
        };
        loop {
            let batch = push.next_batch().await.map_err(js_error)?;
            if self.stopping.get() {
                return Ok(());
            }
            let Some(events) = batch else {
                return Err(js_error(CoreError::Network(
                    "the server closed the push channel".into(),
                )));
            };
            let mut calls = push.take_calls_changed();
            let mut client = self.client.lock().await;
            let outcomes = client.process_events(&events).await.map_err(js_error)?;
            // A commit is a new epoch: the call's media keys follow at once. A commit that
            // removed this device from its call's conversation (whose news of the relay may
            // come before the commit itself) is a change of the call too.
            if let Some(conversation) = self.follow_call(&mut client) {
                if !calls.contains(&conversation) {
                    calls.push(conversation);
                }
            }
            if let (Some(on_calls), false) = (&on_calls, calls.is_empty()) {
                on_calls.call1(&JsValue::NULL, &to_js(&calls)?)?;
            }
            if events.is_empty() {
                continue;
            }
            // Shown at once: the receipts (a request, with the save it waits for) come after.
            // Nothing is lost if the page closes first: the server keeps the events until this
            // device acknowledges them, which it does only after saving them.
            deliver(&on_outcomes, &outcomes)?;
            send_receipts(&mut client).await?;
            drop(client);
            self.save().await?;
        }
    }

    /// Links a new device to this account: `on_code(code: string, qr_svg: string)` receives
    /// the one-time code to type on the new device (and its QR code); resolves when the new
    /// device is in every conversation and holds `history_days` of history (30 by default),
    /// or fails after five minutes.
    #[wasm_bindgen(unchecked_return_type = "Linked")]
    pub async fn link(
        &self,
        on_code: js_sys::Function,
        history_days: Option<u32>,
    ) -> Result<JsValue, JsValue> {
        let mut client = self.client.lock().await;
        let history =
            std::time::Duration::from_secs(u64::from(history_days.unwrap_or(30)) * 86_400);
        let mut shown = Ok(());
        self.cancel_link.set(false);
        let cancel = self.cancel_link.clone();
        let linked = client
            .link_unless(
                LINK_TIMEOUT,
                history,
                |code| {
                    shown = on_code
                        .call2(
                            &JsValue::NULL,
                            &code.text().into(),
                            &qr_svg(&code.qr_payload()).into(),
                        )
                        .map(|_| ());
                },
                move || cancel.get(),
            )
            .await;
        self.save().await?;
        shown?;
        let linked = linked.map_err(js_error)?;
        to_js(&LinkedView {
            device_id: &linked.device_id,
            conversations: linked.conversations,
            messages: linked.messages,
        })
    }

    /// Gives up the link in progress if no device has used its code yet ([`Engine::link`]
    /// then throws, code `usage`); the engine's other calls, waiting behind it, go on.
    #[wasm_bindgen(js_name = cancelLink)]
    pub fn cancel_link(&self) {
        self.cancel_link.set(true);
    }

    /// This account's devices.
    #[wasm_bindgen(unchecked_return_type = "Device[]")]
    pub async fn devices(&self) -> Result<JsValue, JsValue> {
        let devices = self.client.lock().await.devices().await.map_err(js_error)?;
        self.save().await?;
        to_js(
            &devices
                .iter()
                .map(|d| DeviceView {
                    id: &d.id,
                    current: d.current,
                    certified: d.certified,
                    listed: d.listed,
                    list_version: d.list_version,
                    issued_at: d.issued_at,
                })
                .collect::<Vec<_>>(),
        )
    }

    /// Revokes another device of this account (a lost phone): a signed device list without
    /// it, its token killed, and a removal from every conversation. Returns the number of
    /// conversations it was removed from.
    #[wasm_bindgen(js_name = revokeDevice)]
    pub async fn revoke_device(&self, device_id: String) -> Result<u32, JsValue> {
        let mut client = self.client.lock().await;
        client.sync().await.map_err(js_error)?;
        let removed = client.revoke_device(&device_id).await;
        self.save().await?;
        Ok(removed.map_err(js_error)? as u32)
    }

    /// The safety number with `address` (pinning their key on first contact). When their
    /// identity key changed and the change is not accepted yet, the number the new key gives
    /// (`changed`), to compare before [`Engine::accept_new_key`].
    #[wasm_bindgen(js_name = safetyNumber, unchecked_return_type = "SafetyNumber")]
    pub async fn safety_number(&self, address: String) -> Result<JsValue, JsValue> {
        let address = missive_core::lookup::address(&address).map_err(js_error)?;
        let mut client = self.client.lock().await;
        let (number, verified, changed) = match client.safety_number(&address).await {
            Ok((number, verified)) => (number, verified, false),
            Err(CoreError::Refused(alert)) if alert.code == AlertCode::IdentityChanged => {
                // The lookup just made recorded the new key as pending.
                match client
                    .account
                    .pending_safety_number(&address)
                    .map_err(js_error)?
                {
                    Some(number) => (number, false, true),
                    None => return Err(js_error(CoreError::Refused(alert))),
                }
            }
            Err(e) => return Err(js_error(e)),
        };
        drop(client);
        self.save().await?;
        let qr = number.qr_payload();
        to_js(&SafetyNumberView {
            digits: number.display(),
            qr_svg: qr_svg(&qr),
            qr,
            verified,
            changed,
        })
    }

    /// Accepts the identity key the server now announces for `address` (after comparing the
    /// new safety number with them): sending to them goes on; the contact is not verified.
    #[wasm_bindgen(js_name = acceptNewKey)]
    pub async fn accept_new_key(&self, address: String) -> Result<(), JsValue> {
        let address = missive_core::lookup::address(&address).map_err(js_error)?;
        let accepted = self.client.lock().await.accept_new_key(&address).await;
        self.save().await?;
        accepted.map_err(js_error)
    }

    /// The contacts whose identity key changed, the change not accepted yet (sorted).
    #[wasm_bindgen(js_name = identityChanges)]
    pub async fn identity_changes(&self) -> Result<Vec<String>, JsValue> {
        self.client
            .lock()
            .await
            .identity_changes()
            .map_err(js_error)
    }

    /// Whether the message history is backed up under the recovery key; with `on`, turns
    /// it on or off first (and backs up what is new at once).
    #[wasm_bindgen(js_name = historyBackup)]
    pub async fn history_backup(&self, on: Option<bool>) -> Result<bool, JsValue> {
        let mut client = self.client.lock().await;
        if let Some(on) = on {
            if client.account.recovery_key().map_err(js_error)?.is_none() {
                return Err(js_error(CoreError::Usage(
                    "this device holds no recovery key".into(),
                )));
            }
            client.account.set_history_backup(on).map_err(js_error)?;
            client.upload_backup(false).await.map_err(js_error)?;
            client.upload_history().await.map_err(js_error)?;
        }
        let on = client.account.history_backup().map_err(js_error)?;
        drop(client);
        self.save().await?;
        Ok(on)
    }

    /// Marks `address` verified: the safety number was compared in person.
    #[wasm_bindgen(js_name = markVerified)]
    pub async fn mark_verified(&self, address: String) -> Result<(), JsValue> {
        let address = missive_core::lookup::address(&address).map_err(js_error)?;
        self.client
            .lock()
            .await
            .account
            .mark_verified(&address)
            .map_err(js_error)?;
        self.save().await
    }

    /// The security alerts kept for this account, oldest first.
    #[wasm_bindgen(unchecked_return_type = "StoredAlert[]")]
    pub async fn alerts(&self) -> Result<JsValue, JsValue> {
        let alerts = self
            .client
            .lock()
            .await
            .account
            .store()
            .alerts()
            .map_err(js_error)?;
        to_js(&alerts)
    }

    /// The members of `conversation` (addresses, sorted; ours included), each checked
    /// against their pinned identity key.
    pub async fn members(&self, conversation: String) -> Result<Vec<String>, JsValue> {
        let client = self.client.lock().await;
        client.account.members(&conversation).map_err(js_error)
    }

    /// Adds `users` (every device on each one's signed device list) to `conversation`.
    #[wasm_bindgen(js_name = addMembers)]
    pub async fn add_members(
        &self,
        conversation: String,
        users: Vec<String>,
    ) -> Result<(), JsValue> {
        let users = users
            .iter()
            .map(|u| missive_core::lookup::address(u))
            .collect::<Result<Vec<_>, _>>()
            .map_err(js_error)?;
        let added = self
            .client
            .lock()
            .await
            .add_members(&conversation, &users)
            .await;
        self.save().await?;
        added.map(|_| ()).map_err(js_error)
    }

    /// Removes `users` (all their devices) from `conversation`: they read nothing sent after.
    #[wasm_bindgen(js_name = removeMembers)]
    pub async fn remove_members(
        &self,
        conversation: String,
        users: Vec<String>,
    ) -> Result<(), JsValue> {
        let removed = self
            .client
            .lock()
            .await
            .remove_members(&conversation, &users)
            .await;
        self.save().await?;
        removed.map(|_| ()).map_err(js_error)
    }

    /// Ends [`Engine::listen`] at its next wake-up (the next event, or the server's ping).
    pub fn stop(&self) {
        self.stopping.set(true);
    }
}
