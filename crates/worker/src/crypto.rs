//! RS256 / ES256 signatures checked with Web Crypto (`crypto.subtle`), the runtime's
//! native implementation: no RSA or elliptic-curve code in the wasm, and the check runs
//! at native speed. Each JWKS key is imported once per isolate and kept as a `CryptoKey`.
//! Everything else about a token (parsing, HS256, claims) stays in `edgesync_core::auth`.

use std::cell::RefCell;

use js_sys::{Array, Function, Object, Promise, Reflect, Uint8Array};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;

use edgesync_core::auth::{Alg, AuthError, Pending, PublicKey, Step, Verified, Verifier};

/// The JWKS keys imported into Web Crypto, by index into `Verifier::keys` (`None`: not
/// yet imported; `Some(None)`: the runtime refused it, logged once).
#[derive(Default)]
pub struct Keys(RefCell<Vec<Option<Option<JsValue>>>>);

/// Verifies `token` at `now_ms`: HS256 in Rust, RS256 / ES256 with Web Crypto.
pub async fn verify(verifier: &Verifier, keys: &Keys, token: &str, now_ms: i64) -> Result<Verified, AuthError> {
    let pending = match verifier.begin(token, now_ms) {
        Step::Done(result) => return result,
        Step::Signature(p) => p,
    };
    let mut by = None;
    for &i in &pending.keys {
        let Some(key) = keys.get(verifier.keys(), i).await else { continue };
        if check(&pending, &key).await.unwrap_or(false) {
            by = Some(i);
            break;
        }
    }
    verifier.finish(pending, by, now_ms)
}

impl Keys {
    async fn get(&self, all: &[PublicKey], i: usize) -> Option<JsValue> {
        if let Some(Some(known)) = self.0.borrow().get(i) {
            return known.clone();
        }
        let k = all.get(i)?;
        let imported = match import(k).await {
            Ok(key) => Some(key),
            Err(e) => {
                worker::console_warn!("JWT_JWKS: key {:?} cannot be imported into Web Crypto: {e:?}", k.kid);
                None
            }
        };
        let mut cache = self.0.borrow_mut();
        if cache.len() < all.len() {
            cache.resize(all.len(), None);
        }
        cache[i] = Some(imported.clone());
        imported
    }
}

fn subtle() -> Result<Object, JsValue> {
    let crypto = Reflect::get(&js_sys::global(), &"crypto".into())?;
    Reflect::get(&crypto, &"subtle".into())?.dyn_into()
}

/// `{name, ...}` as Web Crypto names the algorithm for importing (`import`) or verifying.
fn algorithm(alg: Alg, import: bool) -> Result<Object, JsValue> {
    let o = Object::new();
    match alg {
        Alg::Rs256 => {
            Reflect::set(&o, &"name".into(), &"RSASSA-PKCS1-v1_5".into())?;
            if import {
                Reflect::set(&o, &"hash".into(), &"SHA-256".into())?;
            }
        }
        Alg::Es256 => {
            Reflect::set(&o, &"name".into(), &"ECDSA".into())?;
            if import {
                Reflect::set(&o, &"namedCurve".into(), &"P-256".into())?;
            } else {
                Reflect::set(&o, &"hash".into(), &"SHA-256".into())?;
            }
        }
    }
    Ok(o)
}

async fn call(method: &str, args: &Array) -> Result<JsValue, JsValue> {
    let subtle = subtle()?;
    let f: Function = Reflect::get(&subtle, &method.into())?.dyn_into()?;
    let promise: Promise = f.apply(&subtle, args)?.dyn_into()?;
    JsFuture::from(promise).await
}

async fn import(k: &PublicKey) -> Result<JsValue, JsValue> {
    let jwk = js_sys::JSON::parse(&k.jwk)?;
    let args = Array::of5(
        &"jwk".into(),
        &jwk,
        &algorithm(k.alg, true)?.into(),
        &false.into(),
        &Array::of1(&"verify".into()).into(),
    );
    call("importKey", &args).await
}

async fn check(p: &Pending, key: &JsValue) -> Result<bool, JsValue> {
    let signature = Uint8Array::from(p.signature.as_slice());
    let data = Uint8Array::from(p.signed.as_bytes());
    let args = Array::of4(&algorithm(p.alg, false)?.into(), key, &signature.into(), &data.into());
    Ok(call("verify", &args).await?.as_bool() == Some(true))
}
