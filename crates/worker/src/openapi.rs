//! `GET /api/openapi.json` as built into the wasm: `build.rs` serializes
//! `edgesync_core::openapi::document` at build time, so the worker carries the text (the
//! document without the development endpoints, and the piece `DEV_MODE` inserts) instead
//! of the code that builds the tree; the deployment's `MAX_CHANGES` goes in when an
//! isolate first serves it.

use edgesync_core::openapi::MAX_CHANGES_SLOT;

const DOCUMENT: &str = include_str!(concat!(env!("OUT_DIR"), "/openapi.json"));
const DEV_PIECE: &str = include_str!(concat!(env!("OUT_DIR"), "/openapi-dev.json"));
const DEV_AT: usize = include!(concat!(env!("OUT_DIR"), "/openapi_dev_at.rs"));

/// The document for a deployment, the same text as
/// `edgesync_core::openapi::document(max_changes, dev).to_string()`.
pub fn document(max_changes: usize, dev: bool) -> String {
    let text = match dev {
        true => [&DOCUMENT[..DEV_AT], DEV_PIECE, &DOCUMENT[DEV_AT..]].concat(),
        false => DOCUMENT.to_string(),
    };
    text.replace(&format!("\"maxItems\":{MAX_CHANGES_SLOT}"), &format!("\"maxItems\":{max_changes}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_built_text_is_the_document_of_the_deployment() {
        for dev in [false, true] {
            for max_changes in [1, 7, 1000, 100_000] {
                let built = edgesync_core::openapi::document(max_changes, dev).to_string();
                assert_eq!(document(max_changes, dev), built, "dev {dev}, max_changes {max_changes}");
            }
        }
        assert!(!DOCUMENT.contains("/api/dev/"), "the development endpoints only under DEV_MODE");
    }
}
