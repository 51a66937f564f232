//! QR codes: drawn for the page (a link code, a safety number) and read from the camera's
//! frames (a link code shown by another device), both in the engine so that the page carries
//! no QR library of its own.

use wasm_bindgen::prelude::*;

/// A QR code of `payload` as an SVG image (dark modules on a light square, four modules of
/// quiet zone), or an empty string if it does not fit a QR code.
pub(crate) fn qr_svg(payload: &str) -> String {
    let Ok(code) = qrcode::QrCode::new(payload.as_bytes()) else {
        return String::new();
    };
    let width = code.width();
    let mut path = String::new();
    for (i, color) in code.to_colors().iter().enumerate() {
        if *color == qrcode::Color::Dark {
            path.push_str(&format!("M{} {}h1v1h-1z", i % width + 4, i / width + 4));
        }
    }
    let size = width + 8;
    format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {size} {size}\" \
         shape-rendering=\"crispEdges\"><rect width=\"{size}\" height=\"{size}\" \
         fill=\"#fff\"/><path d=\"{path}\" fill=\"#000\"/></svg>"
    )
}

/// The text of the first QR code found in a camera frame: `rgba` holds `width` × `height`
/// pixels as a canvas's `getImageData` gives them (four bytes each). Returns `undefined` when
/// the frame holds no readable code (the page tries the next frame), and throws on a frame
/// whose size does not match its pixels.
#[wasm_bindgen(js_name = scanQr)]
pub fn scan_qr(width: u32, height: u32, rgba: &[u8]) -> Result<Option<String>, JsValue> {
    frame_text(width as usize, height as usize, rgba)
        .map_err(|e| crate::js_error(missive_core::CoreError::Usage(e)))
}

/// [`scan_qr`] without JavaScript values.
fn frame_text(w: usize, h: usize, rgba: &[u8]) -> Result<Option<String>, String> {
    if w == 0 || h == 0 || w.checked_mul(h).and_then(|n| n.checked_mul(4)) != Some(rgba.len()) {
        return Err(format!(
            "a frame of {w}×{h} pixels holds {} bytes, not {}",
            w.saturating_mul(h).saturating_mul(4),
            rgba.len()
        ));
    }
    Ok(read(w, h, |x, y| {
        let p = &rgba[(y * w + x) * 4..][..3];
        // Luma (ITU-R BT.601 weights, in integers).
        ((299 * u32::from(p[0]) + 587 * u32::from(p[1]) + 114 * u32::from(p[2])) / 1000) as u8
    }))
}

/// The first QR code `luma` (the grey level of each pixel) shows, decoded.
fn read(width: usize, height: usize, luma: impl FnMut(usize, usize) -> u8) -> Option<String> {
    let mut image = rqrr::PreparedImage::prepare_from_greyscale(width, height, luma);
    image
        .detect_grids()
        .into_iter()
        .find_map(|grid| grid.decode().ok().map(|(_, text)| text))
}
