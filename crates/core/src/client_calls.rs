//! Calls, the signalling side: join a conversation's call with a WebRTC offer, leave it, list
//! the calls going on. The media keys come from the group (`Account::call_epoch`,
//! [`crate::call`]); the media itself is the caller's (the CLI's participant, the browser).

use missive_proto::api::{CallInfo, CallJoinRequest, CallJoinResponse, CallsResponse};
use missive_proto::B64;

use super::Transport;
use crate::account::{conversation_id, group_id_of};
use crate::error::CoreError;

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

    /// Leaves `conversation`'s call.
    pub async fn leave_call(&self, conversation: &str) -> Result<(), CoreError> {
        self.delete(&call_path(conversation)?).await
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
