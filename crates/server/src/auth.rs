//! Device tokens: `DEVICE_ID.SECRET` with a 256-bit random secret. The server stores only
//! SHA-256 of the secret and compares in constant time.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::error::AppError;
use crate::AppState;

/// A new random token secret, base64url.
pub fn new_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    missive_proto::B64::encode(&bytes)
}

/// A new invite code: 128 random bits as eight groups of four hex digits, easy to read out and
/// type, and never mistaken for a command-line flag.
pub fn new_invite_code() -> String {
    let mut bytes = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let hex = hex::encode(bytes);
    hex.as_bytes()
        .chunks(4)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect::<Vec<_>>()
        .join("-")
}

/// The canonical form of a typed invite code: lowercase, without spaces.
pub fn normalize_invite_code(code: &str) -> String {
    code.chars()
        .filter(|c| !c.is_whitespace())
        .flat_map(char::to_lowercase)
        .collect()
}

/// SHA-256 of a secret (a token secret or an invite code).
pub fn hash_secret(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

/// An authenticated device.
#[derive(Clone, Debug)]
pub struct Device {
    pub device_id: String,
    pub address: String,
}

/// Checks a bearer token value and returns the device it belongs to.
pub async fn authenticate(state: &AppState, token: &str) -> Result<Device, AppError> {
    let (device_id, secret) = token.split_once('.').ok_or_else(AppError::unauthorized)?;
    if device_id.len() != 32 || !device_id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(AppError::unauthorized());
    }
    let auth = state
        .store()
        .device_auth(device_id)
        .await?
        .ok_or_else(AppError::unauthorized)?;
    let presented = hash_secret(secret);
    if !bool::from(presented.ct_eq(&auth.token_hash)) {
        return Err(AppError::unauthorized());
    }
    Ok(Device {
        device_id: device_id.to_owned(),
        address: auth.address,
    })
}

impl FromRequestParts<AppState> for Device {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        let header = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        let token = match header {
            Some(header) => header
                .strip_prefix("Bearer ")
                .ok_or_else(AppError::unauthorized)?,
            // A browser's WebSocket cannot set headers: its token comes as a subprotocol.
            None => subprotocol_token(&parts.headers).ok_or_else(AppError::unauthorized)?,
        };
        authenticate(state, token.trim()).await
    }
}

/// The bearer token offered as the WebSocket subprotocol `missive.bearer.TOKEN` (see
/// [`missive_proto::api::WS_BEARER_PROTOCOL_PREFIX`]), if any.
fn subprotocol_token(headers: &axum::http::HeaderMap) -> Option<&str> {
    headers
        .get_all(axum::http::header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .find_map(|p| {
            p.trim()
                .strip_prefix(missive_proto::api::WS_BEARER_PROTOCOL_PREFIX)
        })
}
