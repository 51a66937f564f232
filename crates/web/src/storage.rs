//! The account in the page's storage: the journal written through the page's `EngineStorage`
//! (IndexedDB, `web/src/storage.ts`), one flush at a time, and read back at start.

use std::rc::Rc;

use futures_util::lock::Mutex;
use missive_core::client::Barrier;
use missive_core::journal::{Journal, JournaledStore};
use missive_core::CoreError;
use wasm_bindgen::prelude::*;

use crate::{describe, js_error};

#[wasm_bindgen]
extern "C" {
    /// The page's storage for the account (see `EngineStorage` in the TypeScript types).
    #[wasm_bindgen(typescript_type = "EngineStorage")]
    pub type EngineStorage;

    #[wasm_bindgen(method, catch)]
    fn load(this: &EngineStorage) -> Result<js_sys::Promise, JsValue>;

    #[wasm_bindgen(method, catch)]
    fn write(
        this: &EngineStorage,
        entries: js_sys::Array,
        snapshot: JsValue,
    ) -> Result<js_sys::Promise, JsValue>;
}

/// Writes the journal to the page's storage, one flush at a time (a failed one is put back
/// and retried first by the next, so entries reach the disk in order).
pub(crate) struct Persister {
    journal: Journal,
    storage: EngineStorage,
    writing: Mutex<()>,
}

impl Persister {
    pub(crate) fn new(journal: Journal, storage: EngineStorage) -> Rc<Persister> {
        Rc::new(Persister {
            journal,
            storage,
            writing: Mutex::new(()),
        })
    }

    pub(crate) async fn flush(&self) -> Result<(), CoreError> {
        let _one_at_a_time = self.writing.lock().await;
        while let Some(flush) = self.journal.take()? {
            let entries = js_sys::Array::new();
            for (n, bytes) in &flush.entries {
                let pair = js_sys::Array::new();
                pair.push(&JsValue::from_f64(*n as f64));
                pair.push(&js_sys::Uint8Array::from(bytes.as_slice()));
                entries.push(&pair);
            }
            let snapshot = match &flush.snapshot {
                Some((n, bytes)) => {
                    let object = js_sys::Object::new();
                    set(&object, "seq", &JsValue::from_f64(*n as f64));
                    set(
                        &object,
                        "bytes",
                        &js_sys::Uint8Array::from(bytes.as_slice()),
                    );
                    object.into()
                }
                None => JsValue::NULL,
            };
            let written = match self.storage.write(entries, snapshot) {
                Ok(promise) => wasm_bindgen_futures::JsFuture::from(promise).await,
                Err(e) => Err(e),
            };
            if let Err(e) = written {
                self.journal.put_back(flush)?;
                return Err(CoreError::Storage(format!(
                    "the browser did not save the account: {}",
                    describe(&e)
                )));
            }
        }
        Ok(())
    }

    /// The engine's barrier: flush before every request.
    pub(crate) fn barrier(self: &Rc<Self>) -> Barrier {
        let persister = self.clone();
        Rc::new(move || {
            let persister = persister.clone();
            Box::pin(async move { persister.flush().await })
        })
    }
}

fn set(object: &js_sys::Object, key: &str, value: &JsValue) {
    // Setting a property on a plain object cannot fail.
    let _ = js_sys::Reflect::set(object, &key.into(), value);
}

/// The account the page's storage holds, replayed into memory.
pub(crate) async fn restore(storage: &EngineStorage) -> Result<(JournaledStore, Journal), JsValue> {
    let loaded = wasm_bindgen_futures::JsFuture::from(storage.load()?).await?;
    let field = |object: &JsValue, key: &str| js_sys::Reflect::get(object, &key.into());
    let number = |v: JsValue| {
        v.as_f64()
            .filter(|n| *n >= 1.0 && n.fract() == 0.0)
            .map(|n| n as u64)
            .ok_or_else(|| js_error(CoreError::Storage("a stored entry has no number".into())))
    };
    let snapshot = field(&loaded, "snapshot")?;
    let snapshot = if snapshot.is_null() || snapshot.is_undefined() {
        None
    } else {
        Some((
            number(field(&snapshot, "seq")?)?,
            js_sys::Uint8Array::new(&field(&snapshot, "bytes")?).to_vec(),
        ))
    };
    let mut entries = Vec::new();
    for pair in js_sys::Array::from(&field(&loaded, "entries")?).iter() {
        let pair = js_sys::Array::from(&pair);
        entries.push((
            number(pair.get(0))?,
            js_sys::Uint8Array::new(&pair.get(1)).to_vec(),
        ));
    }
    JournaledStore::restore(snapshot.as_ref().map(|(n, b)| (*n, b.as_slice())), &entries)
        .map_err(js_error)
}
