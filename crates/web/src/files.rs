//! Files in the browser: a `File` the user picked (or dropped) is read a piece at a time,
//! sealed and sent by the engine's own flow (`Client::send_file_from`); a received file is
//! fetched in pieces, opened and checked, and handed to the page as a `Blob` only once its
//! whole digest matched.

use std::rc::Rc;

use missive_core::client::{Destination, FileSource, Progress};
use missive_core::CoreError;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;

use crate::views::MessageView;
use crate::{describe, js_error, to_js, Engine};

/// Plaintext gathered before it becomes one part of the received `Blob`.
const PART: usize = 1 << 20;

/// A `File` from the page.
struct BrowserFile(web_sys::File);

impl FileSource for BrowserFile {
    fn name(&self) -> String {
        self.0.name()
    }

    fn size(&self) -> u64 {
        self.0.size() as u64
    }

    /// The browser does not say where a file is: its name and modification time stand for it
    /// (picking the same unchanged file again resumes its upload, even after a reload).
    fn version(&self) -> (String, u64) {
        let modified_ms = self.0.last_modified().max(0.0) as u64;
        (
            format!("browser:{}", self.0.name()),
            modified_ms.saturating_mul(1_000_000),
        )
    }

    async fn read_at(&self, offset: u64, len: usize) -> Result<Vec<u8>, CoreError> {
        let unreadable = |e: JsValue| {
            CoreError::Io(format!(
                "the browser could not read {}: {}",
                self.0.name(),
                describe(&e)
            ))
        };
        let piece = self
            .0
            .slice_with_f64_and_f64(offset as f64, (offset + len as u64) as f64)
            .map_err(unreadable)?;
        let buffer = JsFuture::from(piece.array_buffer())
            .await
            .map_err(unreadable)?;
        Ok(js_sys::Uint8Array::new(&buffer).to_vec())
    }
}

/// `(done, total)` to a page's callback, if it gave one.
fn progress(callback: Option<js_sys::Function>) -> Option<Progress> {
    let callback = callback?;
    Some(Rc::new(move |done: u64, total: u64| {
        // The page's callback failing says nothing about the transfer.
        let _ = callback.call2(
            &JsValue::NULL,
            &JsValue::from_f64(done as f64),
            &JsValue::from_f64(total as f64),
        );
    }))
}

#[wasm_bindgen]
impl Engine {
    /// Encrypts `file` and sends it to `conversation`, calling `on_progress(done, total)` as
    /// the upload advances; returns the message as stored. Sending the same unchanged file to
    /// the same conversation after an interruption (a cut, a reload) resumes the upload.
    #[wasm_bindgen(js_name = sendFile, unchecked_return_type = "Message")]
    pub async fn send_file(
        &self,
        conversation: String,
        file: web_sys::File,
        #[wasm_bindgen(unchecked_param_type = "(done: number, total: number) => void")]
        on_progress: Option<js_sys::Function>,
    ) -> Result<JsValue, JsValue> {
        let mut client = self.client.lock().await;
        let sent = client
            .send_file_from(&conversation, &BrowserFile(file), progress(on_progress))
            .await
            .map_err(js_error)?;
        self.save().await?;
        to_js(&MessageView::from(&sent.message))
    }

    /// The file message `id` shared (the message's id or the file's), downloaded, opened and
    /// checked, as a `Blob` of type `application/octet-stream` (the page decides how to show
    /// it: never as the sender's media type, which could make it a page of our origin).
    /// Refused when the conversation's label forbids opening its files at all.
    #[wasm_bindgen(js_name = downloadFile)]
    pub async fn download_file(
        &self,
        id: String,
        #[wasm_bindgen(unchecked_param_type = "(done: number, total: number) => void")]
        on_progress: Option<js_sys::Function>,
    ) -> Result<web_sys::Blob, JsValue> {
        let parts = js_sys::Array::new();
        let mut pending = Vec::with_capacity(PART);
        let mut client = self.client.lock().await;
        client
            .receive_file(
                &id,
                Destination::App,
                |plain| {
                    pending.extend_from_slice(plain);
                    if pending.len() >= PART {
                        parts.push(&js_sys::Uint8Array::from(pending.as_slice()));
                        pending.clear();
                    }
                    Ok(())
                },
                progress(on_progress),
            )
            .await
            .map_err(js_error)?;
        if !pending.is_empty() {
            parts.push(&js_sys::Uint8Array::from(pending.as_slice()));
        }
        let options = web_sys::BlobPropertyBag::new();
        options.set_type("application/octet-stream");
        web_sys::Blob::new_with_u8_array_sequence_and_options(&parts, &options)
    }
}
