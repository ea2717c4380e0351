//! Everything this isolate remembers between requests, in one struct: the configuration
//! (read once: an isolate runs one deployment, whose bindings do not change), the token
//! verifier (parsing a JWKS's keys per request would cost CPU for nothing) and the
//! tokens it has verified, the
//! serialized OpenAPI document, the rate-limit buckets (and its view of the shared set of
//! throttled users), the usage counters not yet flushed, and the forwarding addresses
//! of moved buckets. Nothing about the KV state
//! token: it is trusted in every isolate alike (see `state_cache`).

use std::cell::{OnceCell, RefCell};
use std::rc::Rc;

use worker::Env;

use edgesync_core::auth::{TokenCache, Verifier};
use edgesync_core::config::Config;

use crate::limiter;

pub struct Isolate {
    pub config: Config,
    pub verifier: Verifier,
    /// Tokens verified here, until they expire (a repeated token costs no signature check).
    pub tokens: RefCell<TokenCache>,
    /// The JWKS keys, imported into Web Crypto on first use.
    pub keys: crate::crypto::Keys,
    openapi: OnceCell<String>,
    /// The `CACHE` KV binding, looked up on first use. A binding is not tied to the request
    /// it was read in (workerd resolves the request at each call): read once per isolate,
    /// not per request.
    kv: OnceCell<Option<crate::io::Kv>>,
    pub buckets: RefCell<limiter::Buckets>,
    pub usage: RefCell<edgesync_core::accounting::Ledger>,
    /// Forwarding addresses of moved buckets met in fences (`shards`).
    pub learned: crate::shards::Learned,
}

thread_local! {
    static ISOLATE: OnceCell<Rc<Isolate>> = const { OnceCell::new() };
}

impl Isolate {
    /// This isolate's state, made on its first request from `env`.
    pub fn get(env: &Env) -> Rc<Isolate> {
        ISOLATE.with(|cell| cell.get_or_init(|| Rc::new(Isolate::new(env))).clone())
    }

    fn new(env: &Env) -> Isolate {
        // Once per isolate: panics are logged with their message from here on.
        console_error_panic_hook::set_once();
        let config = Config::from_lookup(|k| {
            env.var(k).ok().map(|v| v.to_string()).or_else(|| env.secret(k).ok().map(|v| v.to_string()))
        });
        let verifier = Verifier::with_jwks(
            config.jwt_secret.as_deref(),
            config.jwt_jwks.as_deref(),
            config.jwt_issuer.as_deref(),
            config.jwt_audience.as_deref(),
        );
        for w in &verifier.warnings {
            worker::console_warn!("JWT_JWKS: {w}");
        }
        Isolate {
            config,
            verifier,
            tokens: RefCell::default(),
            keys: crate::crypto::Keys::default(),
            openapi: OnceCell::new(),
            kv: OnceCell::new(),
            buckets: RefCell::default(),
            usage: RefCell::default(),
            learned: RefCell::default(),
        }
    }

    /// Where users' pages are (`SHARD_MAP` and the fences met so far).
    pub fn router<'a>(&'a self, env: &'a Env) -> crate::shards::Router<'a> {
        crate::shards::Router::new(env, &self.config.shard_map, &self.learned)
    }

    /// The `CACHE` KV binding, if the deployment has one.
    pub fn cache(&self, env: &Env) -> Option<&crate::io::Kv> {
        self.kv.get_or_init(|| crate::io::Kv::binding(env, "CACHE")).as_ref()
    }

    /// `GET /api/openapi.json`, serialized at build time, completed on first use.
    pub fn openapi(&self) -> &str {
        self.openapi.get_or_init(|| crate::openapi::document(self.config.limits, self.config.dev_mode))
    }
}
