//! Calls, the signalling side: join a conversation's call with a WebRTC offer, leave it, list
//! the calls going on. The media keys come from the group (`Account::call_epoch`,
//! [`crate::call`]); the media itself is the caller's (the CLI's participant, the browser).

use missive_proto::api::{
    CallInfo, CallJoinRequest, CallJoinResponse, CallLeaveResponse, CallsResponse, IceServer,
    IceServersResponse,
};
use missive_proto::app::AppBody;
use missive_proto::{ErrorCode, B64};

use super::{Client, Transport};
use crate::account::{conversation_id, group_id_of};
use crate::error::CoreError;

/// A call this device is in: which one, since when (the server's clock), and the relay's
/// answer to our offer.
#[derive(Clone, Debug)]
pub struct JoinedCall {
    pub call_id: Vec<u8>,
    pub started_ms: u64,
    pub answer: String,
    /// We started it (and rang the members).
    pub started: bool,
}

/// A new call's id: random, it names the call (the relay's key, the key exporter's context)
/// and is no secret.
pub fn new_call_id() -> Vec<u8> {
    rand::random::<[u8; 16]>().to_vec()
}

/// The encrypted call message: the ring (`ended: None`), or the end, with the call's length
/// in seconds and the addresses of those who were in it.
pub fn call_message(call_id: &[u8], ended: Option<u64>, answered: Vec<String>) -> AppBody {
    AppBody::Call {
        call_id: crate::hex(call_id),
        ended,
        answered,
    }
}

/// A call going on in one of our conversations.
#[derive(Clone, Debug)]
pub struct OngoingCall {
    pub conversation: String,
    pub call_id: Vec<u8>,
    pub started_ms: u64,
    /// Device ids of the participants.
    pub devices: Vec<String>,
}

fn call_path(conversation: &str) -> Result<String, CoreError> {
    let group = group_id_of(conversation)?;
    Ok(format!("/v1/groups/{}/call", B64::encode(group.as_slice())))
}

impl Transport {
    /// Joins `conversation`'s call `call_id` (starting it if none is going on) with an SDP
    /// offer; the relay's answer comes back.
    pub async fn join_call(
        &self,
        conversation: &str,
        call_id: &[u8],
        offer: String,
    ) -> Result<CallJoinResponse, CoreError> {
        let request = CallJoinRequest {
            call_id: B64(call_id.to_vec()),
            offer,
        };
        self.post(&call_path(conversation)?, &request).await
    }

    /// Leaves `conversation`'s call; whether this device was the last one in it (the call
    /// ended with it).
    pub async fn leave_call(&self, conversation: &str) -> Result<bool, CoreError> {
        let answer: CallLeaveResponse = self.delete_json(&call_path(conversation)?).await?;
        Ok(answer.ended)
    }

    /// The TURN (and STUN) servers this device may use to reach the relay, with credentials
    /// of its own; none when the server names none.
    pub async fn ice_servers(&self) -> Result<Vec<IceServer>, CoreError> {
        let answer: IceServersResponse = self.get("/v1/calls/ice-servers").await?;
        Ok(answer.ice_servers)
    }

    /// The call going on in `conversation`, if any.
    pub async fn ongoing_call(&self, conversation: &str) -> Result<Option<OngoingCall>, CoreError> {
        Ok(self
            .calls()
            .await?
            .into_iter()
            .find(|c| c.conversation == conversation))
    }

    /// The calls going on in our conversations, oldest first.
    pub async fn calls(&self) -> Result<Vec<OngoingCall>, CoreError> {
        let answer: CallsResponse = self.get("/v1/calls").await?;
        Ok(answer
            .calls
            .into_iter()
            .map(
                |CallInfo {
                     group,
                     call_id,
                     started_ms,
                     devices,
                 }| OngoingCall {
                    conversation: conversation_id(&group.0),
                    call_id: call_id.0,
                    started_ms,
                    devices,
                },
            )
            .collect())
    }
}

impl Client {
    /// Joins `conversation`'s call with an SDP offer, or starts one and rings the members
    /// (an encrypted call message: the server learns no more than the call it relays). Two
    /// members starting at once end in the same call: the later one joins the earlier's.
    pub async fn enter_call(
        &mut self,
        conversation: &str,
        offer: String,
    ) -> Result<JoinedCall, CoreError> {
        let transport = self.transport();
        let mut going_on = transport.ongoing_call(conversation).await?;
        for _ in 0..2 {
            let (call_id, started) = match &going_on {
                Some(call) => (call.call_id.clone(), false),
                None => (new_call_id(), true),
            };
            let answer = match transport
                .join_call(conversation, &call_id, offer.clone())
                .await
            {
                Ok(answer) => answer,
                Err(e) if started && e.server_code() == Some(ErrorCode::CallInProgress) => {
                    going_on = transport.ongoing_call(conversation).await?;
                    continue;
                }
                Err(e) => return Err(e),
            };
            if started {
                self.send_body(conversation, call_message(&call_id, None, Vec::new()))
                    .await?;
            }
            return Ok(JoinedCall {
                call_id,
                started_ms: answer.started_ms,
                answer: answer.answer,
                started,
            });
        }
        Err(CoreError::Usage(
            "the conversation's call changed while joining it: try again".into(),
        ))
    }

    /// Leaves `conversation`'s call; the last one out (the server says which, so of two leaving
    /// at once only one) tells the members it ended, with its length and who was in it
    /// (`answered`, addresses). Returns whether the call ended.
    pub async fn hang_up(
        &mut self,
        conversation: &str,
        call_id: &[u8],
        started_ms: u64,
        mut answered: Vec<String>,
    ) -> Result<bool, CoreError> {
        let transport = self.transport();
        let last = match transport.leave_call(conversation).await {
            Ok(last) => last,
            // Already out (the relay dropped a connection it lost): last if none is left.
            Err(e) if e.server_code() == Some(ErrorCode::NotInCall) => transport
                .ongoing_call(conversation)
                .await?
                .is_none_or(|c| c.call_id != call_id),
            Err(e) => return Err(e),
        };
        if !last {
            return Ok(false);
        }
        let seconds = crate::now_ms().saturating_sub(started_ms) / 1000;
        answered.sort();
        answered.dedup();
        self.send_body(conversation, call_message(call_id, Some(seconds), answered))
            .await?;
        Ok(true)
    }
}
