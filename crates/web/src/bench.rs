//! Measurements in the browser (feature `bench`, built by `cargo xtask web-bench` only): the
//! same code `missive-bench` runs natively.

use wasm_bindgen::prelude::*;

use crate::{js_error, Engine};

#[wasm_bindgen]
impl Engine {
    /// What adding, joining and removing cost in an MLS group of `size` devices, measured on
    /// this page's thread (`missive_core::group_bench::run`): its figures as an object.
    #[wasm_bindgen(js_name = benchGroup)]
    pub fn bench_group(size: u32) -> Result<JsValue, JsValue> {
        let report = missive_core::group_bench::run(size as usize).map_err(js_error)?;
        crate::to_js(&report)
    }
}
