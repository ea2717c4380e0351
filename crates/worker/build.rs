//! Serializes the OpenAPI document at build time, so the wasm ships it as text instead of
//! the code that builds it (`edgesync_core::openapi::document`, a `json!` tree that was
//! some 130 KB of wasm; see `src/openapi.rs`). The document depends on the collections
//! declaration (read by edgesync-core's own build script, from `EDGESYNC_COLLECTIONS` like
//! the wasm's copy of the crate) and on two settings known only at run time:
//! - `MAX_CHANGES` and `MAX_UPLOAD_RECORDS`, written as `openapi::LIMIT_SLOTS` and
//!   replaced when served;
//! - `DEV_MODE`, which adds the development endpoints: one piece of text inserted into the
//!   document without them, so the wasm holds one document, the piece and its offset
//!   (`openapi.json`, `openapi-dev.json`, `openapi_dev_at.rs` in `OUT_DIR`).

use std::path::{Path, PathBuf};

use edgesync_core::openapi::{document, LIMIT_SLOTS};

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=EDGESYNC_COLLECTIONS");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("OUT_DIR"));
    let (base, dev) = (document(LIMIT_SLOTS, false).to_string(), document(LIMIT_SLOTS, true).to_string());
    let (at, piece) = insertion(&base, &dev)
        .unwrap_or_else(|| panic!("the DEV_MODE OpenAPI document is not the other one with one piece inserted"));
    write(&out.join("openapi.json"), &base);
    write(&out.join("openapi-dev.json"), piece);
    write(&out.join("openapi_dev_at.rs"), &format!("{at}\n"));
}

/// `(at, piece)` such that `longer` is `shorter` with `piece` inserted at byte `at`.
fn insertion<'a>(shorter: &str, longer: &'a str) -> Option<(usize, &'a str)> {
    let common = |a: &mut dyn Iterator<Item = (u8, u8)>| a.take_while(|(x, y)| x == y).count();
    let mut at = common(&mut shorter.bytes().zip(longer.bytes()));
    while !shorter.is_char_boundary(at) {
        at -= 1;
    }
    let end = longer.len() - (shorter.len() - at);
    let piece = longer.get(at..end)?;
    (longer[..at] == shorter[..at] && longer[end..] == shorter[at..]).then_some((at, piece))
}

fn write(path: &Path, text: &str) {
    if std::fs::read_to_string(path).ok().as_deref() != Some(text) {
        std::fs::write(path, text).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
    }
}
