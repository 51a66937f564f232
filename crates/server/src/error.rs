//! [`AppError`]: every failure of a request, as a JSON body with a stable code. Internal details
//! go to the log, never into the response.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use missive_proto::{ErrorBody, ErrorCode};

use crate::groups::GroupError;
use crate::store::StoreError;

/// A request failure.
#[derive(Debug)]
pub struct AppError {
    pub status: StatusCode,
    pub code: ErrorCode,
    pub message: String,
    pub current_epoch: Option<u64>,
    pub received: Option<u64>,
}

impl AppError {
    pub fn new(status: StatusCode, code: ErrorCode, message: impl Into<String>) -> Self {
        AppError {
            status,
            code,
            message: message.into(),
            current_epoch: None,
            received: None,
        }
    }

    pub fn bad_request(code: ErrorCode, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            ErrorCode::Unauthorized,
            "missing or invalid device token",
        )
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, ErrorCode::Forbidden, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, ErrorCode::NotFound, message)
    }

    pub fn stale(current: u64) -> Self {
        AppError {
            current_epoch: Some(current),
            ..Self::new(
                StatusCode::CONFLICT,
                ErrorCode::StaleEpoch,
                format!("the group is at epoch {current}"),
            )
        }
    }

    pub fn internal(detail: impl std::fmt::Display) -> Self {
        tracing::error!(error = %detail, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::Internal,
            "internal error",
        )
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            code: self.code,
            message: self.message,
            current_epoch: self.current_epoch,
            received: self.received,
        };
        (self.status, Json(body)).into_response()
    }
}

impl From<StoreError> for AppError {
    fn from(e: StoreError) -> Self {
        use StoreError::*;
        match e {
            AddressTaken => Self::new(
                StatusCode::CONFLICT,
                ErrorCode::AddressTaken,
                "this address is already registered",
            ),
            DeviceExists => Self::new(
                StatusCode::CONFLICT,
                ErrorCode::AddressTaken,
                "this device id is already registered",
            ),
            InviteInvalid => Self::new(
                StatusCode::FORBIDDEN,
                ErrorCode::InviteInvalid,
                "the invite code is unknown, used, expired, or for another address",
            ),
            GroupExists => Self::new(
                StatusCode::CONFLICT,
                ErrorCode::GroupExists,
                "a group with this id exists",
            ),
            NoGroup => Self::not_found("no such group"),
            NoUser => Self::not_found("no such user"),
            NoDevice => Self::not_found("no such device of yours"),
            NotMember => Self::forbidden("this device is not a member of the group"),
            StaleEpoch(current) => Self::stale(current),
            NoKeyPackage => Self::new(
                StatusCode::CONFLICT,
                ErrorCode::NoKeyPackage,
                "a device of this user has no key package left",
            ),
            QuotaExceeded => Self::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                ErrorCode::QuotaExceeded,
                "this upload would exceed your storage quota; delete files or wait for old ones to expire",
            ),
            StaleDeviceList(current) => Self::new(
                StatusCode::CONFLICT,
                ErrorCode::StaleDeviceList,
                format!(
                    "the server holds device list version {current}: fetch it and sign the next"
                ),
            ),
            Backend(e) => Self::internal(e),
        }
    }
}

impl From<GroupError> for AppError {
    fn from(e: GroupError) -> Self {
        match e {
            GroupError::Malformed(m) => Self::bad_request(ErrorCode::MalformedMls, m),
            GroupError::Stale { current, .. } => Self::stale(current),
            GroupError::Invalid(m) => Self::bad_request(ErrorCode::InvalidCommit, m),
            GroupError::Forbidden(m) => Self::forbidden(m),
            GroupError::Internal(m) => Self::internal(m),
        }
    }
}
