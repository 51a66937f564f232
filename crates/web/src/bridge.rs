//! Between the engine and JavaScript: errors as `Error`s with a stable `code`, values as
//! plain objects, and the outcomes handed to the page.

use missive_core::account::Outcome;
use missive_core::client::Client;
use missive_core::CoreError;
use serde::Serialize;
use wasm_bindgen::prelude::*;

use crate::views::OutcomeView;

/// A thrown JavaScript value as text.
pub(crate) fn describe(e: &JsValue) -> String {
    e.dyn_ref::<js_sys::Error>()
        .map(|e| String::from(e.message()))
        .or_else(|| e.as_string())
        .unwrap_or_else(|| "unknown error".into())
}

/// Sends the delivery receipts due (one per conversation that received messages, per batch);
/// a server out of reach leaves them for the next batch.
pub(crate) async fn send_receipts(client: &mut Client) -> Result<(), JsValue> {
    match client.send_receipts().await {
        Ok(_) | Err(CoreError::Network(_)) => Ok(()),
        Err(e) => Err(js_error(e)),
    }
}

pub(crate) fn deliver(on_outcomes: &js_sys::Function, outcomes: &[Outcome]) -> Result<(), JsValue> {
    if outcomes.is_empty() {
        return Ok(());
    }
    let value = to_js(&outcomes.iter().map(OutcomeView::from).collect::<Vec<_>>())?;
    on_outcomes.call1(&JsValue::NULL, &value)?;
    Ok(())
}

/// A [`CoreError`] as a JavaScript `Error` with a stable `code` property.
pub(crate) fn js_error(e: CoreError) -> JsValue {
    let code = match &e {
        CoreError::Refused(alert) => alert.code.as_str(),
        CoreError::Server { code, .. } => code.as_str(),
        CoreError::Network(_) => "network",
        CoreError::Storage(_) => "storage",
        CoreError::Mls(_) => "mls",
        CoreError::Usage(_) => "usage",
        CoreError::File(_) => "file",
        CoreError::Io(_) => "io",
        CoreError::UnknownUser(_) => "unknown_user",
        CoreError::NeedContacts(_) => "need_contacts",
    };
    let error = js_sys::Error::new(&e.to_string());
    // Setting a property on a fresh Error cannot fail.
    let _ = js_sys::Reflect::set(&error, &"code".into(), &code.into());
    error.into()
}

pub(crate) fn to_js<T: Serialize>(value: &T) -> Result<JsValue, JsValue> {
    // Plain objects (not Maps), and u64 as numbers: milliseconds and sequence numbers stay far
    // below 2^53.
    let serializer = serde_wasm_bindgen::Serializer::json_compatible();
    value.serialize(&serializer).map_err(JsValue::from)
}
