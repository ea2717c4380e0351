//! `GET /api/openapi.json` as built into the wasm: `build.rs` serializes
//! `edgesync_core::openapi::document` at build time, so the worker carries the text (the
//! document without the development endpoints, and the piece `DEV_MODE` inserts) instead
//! of the code that builds the tree; the deployment's `MAX_CHANGES` and
//! `MAX_UPLOAD_RECORDS` go in when an isolate first serves it.

use edgesync_core::openapi::LIMIT_SLOTS;
use edgesync_core::parse::Limits;

const DOCUMENT: &str = include_str!(concat!(env!("OUT_DIR"), "/openapi.json"));
const DEV_PIECE: &str = include_str!(concat!(env!("OUT_DIR"), "/openapi-dev.json"));
const DEV_AT: usize = include!(concat!(env!("OUT_DIR"), "/openapi_dev_at.rs"));

/// The document for a deployment, the same text as
/// `edgesync_core::openapi::document(limits, dev).to_string()`.
pub fn document(limits: Limits, dev: bool) -> String {
    let text = match dev {
        true => [&DOCUMENT[..DEV_AT], DEV_PIECE, &DOCUMENT[DEV_AT..]].concat(),
        false => DOCUMENT.to_string(),
    };
    fill(&text, limits)
}

/// `text` with each `"maxItems":<slot>` holding the deployment's limit, in one pass (so a
/// limit written in place of one slot is never taken for the other).
fn fill(text: &str, limits: Limits) -> String {
    const KEY: &str = "\"maxItems\":";
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(KEY) {
        let (head, tail) = rest.split_at(at + KEY.len());
        out.push_str(head);
        let (number, after) = tail.split_at(tail.bytes().take_while(u8::is_ascii_digit).count());
        match number.parse::<usize>() {
            Ok(n) if n == LIMIT_SLOTS.max_changes => out.push_str(&limits.max_changes.to_string()),
            Ok(n) if n == LIMIT_SLOTS.max_upload_records => out.push_str(&limits.max_upload_records.to_string()),
            _ => out.push_str(number),
        }
        rest = after;
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_built_text_is_the_document_of_the_deployment() {
        for dev in [false, true] {
            // The last two: a limit equal to the other's slot stays itself.
            for (max_changes, max_upload_records) in [
                (1, 1),
                (7, 1000),
                (1000, 7),
                (100, 100_000),
                (LIMIT_SLOTS.max_upload_records, 5),
                (5, LIMIT_SLOTS.max_changes),
            ] {
                let limits = Limits { max_changes, max_upload_records };
                let built = edgesync_core::openapi::document(limits, dev).to_string();
                assert_eq!(document(limits, dev), built, "dev {dev}, {limits:?}");
            }
        }
        assert!(!DOCUMENT.contains("/api/dev/"), "the development endpoints only under DEV_MODE");
    }
}
