//! Calls in the browser. The page holds the media (an `RTCPeerConnection` to the server's
//! relay, `web/src/call.ts`); the engine holds everything else: joining or starting the call
//! (and ringing), who is in it, hanging up (and telling the members when the last one leaves),
//! and the SFrame keys. The page's encoded-frame transforms run in the engine's own Worker
//! (`RTCRtpScriptTransform`) and call [`Engine::seal_frame`] and [`Engine::open_frame`]: the
//! call's secret never leaves the engine.
//!
//! A commit in the conversation's group is a new epoch, so new keys: [`Engine::follow_call`]
//! runs after every batch of events and every sync. A frame already sealed under the next
//! epoch (a member rekeyed first) is refused with the code `call_epoch_ahead`: the Worker then
//! syncs at once, so the keys catch up within a round trip.

use std::collections::{BTreeSet, HashMap};

use missive_core::call::{CallKeys, Media};
use missive_core::client::Client;
use missive_core::CoreError;
use serde::Serialize;
use wasm_bindgen::prelude::*;
use web_time::Instant;

use crate::bridge::{js_error, to_js};
use crate::Engine;

#[wasm_bindgen(typescript_custom_section)]
const TYPES: &'static str = r#"
/** A call going on in one of our conversations. */
export interface OngoingCall {
  conversation: string;
  call_id: string;
  /** When it started (ms since the Unix epoch, the server's clock). */
  started_ms: number;
  /** The devices in it (ids). */
  devices: string[];
}

/** The call this device joined: the relay's answer to the page's offer. */
export interface JoinedCall {
  call_id: string;
  answer: string;
  started_ms: number;
  /** This device started it (and rang the members). */
  started: boolean;
}

/** The call this device is in, as the engine sees it now. */
export interface CallStatus {
  conversation: string;
  call_id: string;
  started_ms: number;
  /** The others in the call. */
  participants: { device: string; address: string }[];
  /** This device was removed from the conversation: the call is over for it. */
  removed: boolean;
}

/** A member's media frame, opened. */
export interface OpenedFrame {
  device: string;
  address: string;
  payload: Uint8Array;
}
"#;

/// The call this device is in.
pub(crate) struct ActiveCall {
    conversation: String,
    call_id: Vec<u8>,
    started_ms: u64,
    epoch: u64,
    keys: CallKeys,
    /// Device id → address, of every member seen during the call.
    names: HashMap<String, String>,
    /// Who was in it (addresses, ours included): the end message names them.
    answered: BTreeSet<String>,
    removed: bool,
}

#[derive(Serialize)]
struct OngoingView {
    conversation: String,
    call_id: String,
    started_ms: u64,
    devices: Vec<String>,
}

#[derive(Serialize)]
struct JoinedView {
    call_id: String,
    answer: String,
    started_ms: u64,
    started: bool,
}

#[derive(Serialize)]
struct Participant {
    device: String,
    address: String,
}

#[derive(Serialize)]
struct StatusView {
    conversation: String,
    call_id: String,
    started_ms: u64,
    participants: Vec<Participant>,
    removed: bool,
}

/// An `Error` with our own `code` (codes the engine's `CoreError`s do not have).
fn coded(code: &str, message: &str) -> JsValue {
    let error = js_sys::Error::new(message);
    let _ = js_sys::Reflect::set(&error, &"code".into(), &code.into());
    error.into()
}

fn media(video: bool) -> Media {
    if video {
        Media::Video
    } else {
        Media::Audio
    }
}

fn not_in_call() -> JsValue {
    coded("not_in_call", "this device is in no call")
}

#[wasm_bindgen]
impl Engine {
    /// The calls going on in our conversations.
    #[wasm_bindgen(unchecked_return_type = "OngoingCall[]")]
    pub async fn calls(&self) -> Result<JsValue, JsValue> {
        let transport = self.client.lock().await.transport();
        let calls = transport.calls().await.map_err(js_error)?;
        to_js(
            &calls
                .into_iter()
                .map(|c| OngoingView {
                    conversation: c.conversation,
                    call_id: missive_core::hex(&c.call_id),
                    started_ms: c.started_ms,
                    devices: c.devices,
                })
                .collect::<Vec<_>>(),
        )
    }

    /// The TURN servers (with this device's credentials) to give the page's
    /// `RTCPeerConnection`, for networks that block UDP to the relay; none if the server names
    /// none.
    #[wasm_bindgen(js_name = iceServers, unchecked_return_type = "RTCIceServer[]")]
    pub async fn ice_servers(&self) -> Result<JsValue, JsValue> {
        let transport = self.client.lock().await.transport();
        to_js(&transport.ice_servers().await.map_err(js_error)?)
    }

    /// Joins `conversation`'s call with the page's SDP `offer`, or starts one and rings the
    /// members; the relay's answer comes back. One call at a time.
    #[wasm_bindgen(js_name = joinCall, unchecked_return_type = "JoinedCall")]
    pub async fn join_call(&self, conversation: String, offer: String) -> Result<JsValue, JsValue> {
        if self.call.borrow().is_some() {
            return Err(js_error(CoreError::Usage(
                "this device is in a call already: hang up first".into(),
            )));
        }
        let mut client = self.client.lock().await;
        let joined = client.enter_call(&conversation, offer).await;
        // The ring is a message: saved before anything else is sent.
        drop(client);
        self.save().await?;
        let joined = joined.map_err(js_error)?;
        let mut client = self.client.lock().await;
        let keys = client
            .account
            .call_epoch(&conversation, &joined.call_id, CallKeys::secret_len())
            .and_then(|epoch| Ok((epoch.epoch, epoch.members.clone(), CallKeys::new(epoch)?)));
        let (epoch, members, keys) = match keys {
            Ok(keys) => keys,
            Err(e) => {
                // No keys, no call (a commit removed us meanwhile): leave the relay at once.
                let _ = client.transport().leave_call(&conversation).await;
                return Err(js_error(e));
            }
        };
        let active = ActiveCall {
            conversation,
            call_id: joined.call_id.clone(),
            started_ms: joined.started_ms,
            epoch,
            keys,
            names: members
                .into_iter()
                .map(|(_, owner)| (owner.device_id, owner.address))
                .collect(),
            answered: BTreeSet::from([client.account.address().to_owned()]),
            removed: false,
        };
        *self.call.borrow_mut() = Some(active);
        to_js(&JoinedView {
            call_id: missive_core::hex(&joined.call_id),
            answer: joined.answer,
            started_ms: joined.started_ms,
            started: joined.started,
        })
    }

    /// Joins again the call this device is in, with a new `offer` (the page's connection to the
    /// relay was lost: its network changed or dropped): the relay replaces the lost
    /// connection, and the call's keys go on as they were. Refused (`forbidden`) if this
    /// device is no longer a member of the conversation.
    #[wasm_bindgen(js_name = rejoinCall, unchecked_return_type = "JoinedCall")]
    pub async fn rejoin_call(&self, offer: String) -> Result<JsValue, JsValue> {
        let (conversation, call_id, started_ms) = self
            .call
            .borrow()
            .as_ref()
            .map(|c| (c.conversation.clone(), c.call_id.clone(), c.started_ms))
            .ok_or_else(not_in_call)?;
        let transport = self.client.lock().await.transport();
        let joined = transport
            .join_call(&conversation, &call_id, offer)
            .await
            .map_err(js_error)?;
        to_js(&JoinedView {
            call_id: missive_core::hex(&call_id),
            answer: joined.answer,
            started_ms,
            started: false,
        })
    }

    /// The call this device is in (`undefined` if none): who else is in it, and whether this
    /// device was removed from the conversation meanwhile. The keys follow the group first.
    #[wasm_bindgen(js_name = callStatus, unchecked_return_type = "CallStatus | undefined")]
    pub async fn call_status(&self) -> Result<JsValue, JsValue> {
        let mut client = self.client.lock().await;
        self.follow_call(&mut client);
        let Some((conversation, removed)) = self
            .call
            .borrow()
            .as_ref()
            .map(|c| (c.conversation.clone(), c.removed))
        else {
            return Ok(JsValue::UNDEFINED);
        };
        let transport = client.transport();
        drop(client);
        let ongoing = if removed {
            None
        } else {
            transport
                .ongoing_call(&conversation)
                .await
                .map_err(js_error)?
        };
        let mut slot = self.call.borrow_mut();
        let Some(call) = slot.as_mut() else {
            return Ok(JsValue::UNDEFINED);
        };
        let mut participants = Vec::new();
        for device in ongoing
            .filter(|o| o.call_id == call.call_id)
            .map(|o| o.devices)
            .unwrap_or_default()
        {
            if device == self.device_id {
                continue;
            }
            let address = call.names.get(&device).cloned().unwrap_or_default();
            if !address.is_empty() {
                call.answered.insert(address.clone());
            }
            participants.push(Participant { device, address });
        }
        to_js(&StatusView {
            conversation: call.conversation.clone(),
            call_id: missive_core::hex(&call.call_id),
            started_ms: call.started_ms,
            participants,
            removed: call.removed,
        })
    }

    /// Leaves the call; the last one out tells the members it ended (its length, who was in
    /// it). Returns whether the call ended.
    #[wasm_bindgen(js_name = hangUp)]
    pub async fn hang_up(&self) -> Result<bool, JsValue> {
        let Some(call) = self.call.borrow_mut().take() else {
            return Err(not_in_call());
        };
        let mut client = self.client.lock().await;
        let ended = if call.removed {
            // A member removed has no say, and sees no call of the conversation any more.
            let _ = client.transport().leave_call(&call.conversation).await;
            Ok(false)
        } else {
            client
                .hang_up(
                    &call.conversation,
                    &call.call_id,
                    call.started_ms,
                    call.answered.into_iter().collect(),
                )
                .await
        };
        drop(client);
        self.save().await?;
        ended.map_err(js_error)
    }

    /// Seals one of our encoded media frames (SFrame under this device's key of the current
    /// epoch); a `video` frame (VP8) keeps its payload header in clear, authenticated.
    #[wasm_bindgen(js_name = sealFrame)]
    pub fn seal_frame(&self, frame: &[u8], video: bool) -> Result<Vec<u8>, JsValue> {
        let mut slot = self.call.borrow_mut();
        let call = slot.as_mut().ok_or_else(not_in_call)?;
        call.keys.seal_media(media(video), frame).map_err(js_error)
    }

    /// Opens a member's media frame. Refused (code `rejected_message`) unless a member of the
    /// current or previous epoch sealed it; `call_epoch_ahead` when it is sealed under an
    /// epoch this device has not reached yet (sync, then the next frames open).
    #[wasm_bindgen(js_name = openFrame, unchecked_return_type = "OpenedFrame")]
    pub fn open_frame(&self, frame: &[u8], video: bool) -> Result<JsValue, JsValue> {
        let mut slot = self.call.borrow_mut();
        let call = slot.as_mut().ok_or_else(not_in_call)?;
        let media = media(video);
        if call.keys.is_ahead(media, frame) {
            return Err(coded(
                "call_epoch_ahead",
                "a call frame of an epoch this device has not reached yet",
            ));
        }
        let opened = call
            .keys
            .open_media(media, frame, Instant::now())
            .map_err(js_error)?;
        let out = js_sys::Object::new();
        let set = |key: &str, value: JsValue| js_sys::Reflect::set(&out, &key.into(), &value);
        set("device", opened.sender.device_id.into())?;
        set("address", opened.sender.address.into())?;
        set(
            "payload",
            js_sys::Uint8Array::from(opened.payload.as_slice()).into(),
        )?;
        Ok(out.into())
    }
}

impl Engine {
    /// Brings the call's keys to the group's epoch (a member added or removed); notes when
    /// this device is no longer a member. Returns the call's conversation when its members
    /// changed (or this device was removed from it): the page asks who is in the call then.
    pub(crate) fn follow_call(&self, client: &mut Client) -> Option<String> {
        let mut slot = self.call.borrow_mut();
        let call = slot.as_mut().filter(|c| !c.removed)?;
        match client
            .account
            .call_epoch(&call.conversation, &call.call_id, CallKeys::secret_len())
        {
            Ok(epoch) if epoch.epoch != call.epoch => {
                for (_, owner) in &epoch.members {
                    call.names
                        .insert(owner.device_id.clone(), owner.address.clone());
                }
                call.epoch = epoch.epoch;
                // Epochs only grow: a failure here would be a bug, and the old keys stay.
                let _ = call.keys.rekey(epoch, Instant::now());
                Some(call.conversation.clone())
            }
            Ok(_) => None,
            Err(_) => {
                call.removed = true;
                Some(call.conversation.clone())
            }
        }
    }
}
