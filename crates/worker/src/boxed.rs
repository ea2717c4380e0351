//! Futures boxed at the seams of the request: each stage of the driver and each
//! endpoint's handler is polled through a function of its own instead of being inlined
//! into the request's one state machine, which makes the wasm smaller (measured); the
//! two `wait_until` futures then also share one instantiation of its promise glue.

use std::future::Future;
use std::pin::Pin;

pub(crate) type Boxed<'a, T> = Pin<Box<dyn Future<Output = T> + 'a>>;

pub(crate) fn boxed<'a, T>(f: impl Future<Output = T> + 'a) -> Boxed<'a, T> {
    Box::pin(f)
}
