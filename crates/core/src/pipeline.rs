//! The request pipeline's decisions, pure: which requests degraded mode pauses, when the
//! KV state token may answer, and what KV bookkeeping a request leaves behind. The worker's
//! `driver` runs the stages (authenticate → rate-limit → degrade gate → fast path → body →
//! handler → bookkeeping) and asks these functions at each step.

use crate::endpoints::{Access, Endpoint, Handler};
use crate::error::ApiError;
use crate::quota::{retry_after_midnight, Mode};
use crate::reply::{self, Reply};

/// The degrade gate, before the body is read: reads pause in degraded mode, writes only
/// once the D1 write quota is spent. `jitter_s` spreads the clients' return (0–600 s).
pub fn gate(access: Access, mode: Mode, now: i64, jitter_s: u64) -> Result<(), ApiError> {
    let pause = |writes| Err(ApiError::Degraded { retry_after: retry_after_midnight(now, jitter_s), writes });
    match (access, mode) {
        (_, Mode::Normal) | (Access::Meta, _) | (Access::ReadWrite, _) => Ok(()),
        (Access::Read, _) => pause(false),
        (Access::Write, Mode::WritesRefused) => pause(true),
        (Access::Write, Mode::Degraded) => Ok(()),
    }
}

/// What `POST /api/sync` does in each mode, once its changes are known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncMode {
    /// Push, then pull.
    Full,
    /// Write priority: apply the push, pull nothing (the reply says `degraded: true`).
    PushOnly,
    /// Nothing to do in this mode: the request pauses (`writes`: it carried changes).
    Pause { writes: bool },
}

pub fn sync_mode(mode: Mode, has_changes: bool) -> SyncMode {
    match (mode, has_changes) {
        (Mode::Normal, _) => SyncMode::Full,
        (Mode::WritesRefused, writes) => SyncMode::Pause { writes },
        (Mode::Degraded, false) => SyncMode::Pause { writes: false },
        (Mode::Degraded, true) => SyncMode::PushOnly,
    }
}

/// Whether the KV state token is consulted: the check always, other GETs only when
/// conditional, and only while KV can still be written through (a token that can no
/// longer be kept in step with D1 is not trusted).
pub fn consults_kv(endpoint: &Endpoint, kv_ok: bool, if_none_match: Option<&str>) -> bool {
    kv_ok && endpoint.conditional && (endpoint.handler == Handler::Check || if_none_match.is_some())
}

/// The answer the KV token gives, if it can: `cached` is the token (written today),
/// `trusted` whether this isolate has seen it agree with D1. A delta pull is answered
/// only from `since` 0 or at or past the cached state: another `since` may be below the
/// purge horizon, which only D1 knows. `None`: ask D1.
pub fn answer_from_kv(
    endpoint: &Endpoint,
    cached: Option<i64>,
    trusted: bool,
    since: Option<i64>,
    if_none_match: Option<&str>,
    now: i64,
) -> Option<Result<Reply, ApiError>> {
    let seq = cached.filter(|_| trusted)?;
    if since.is_some_and(|since| since != 0 && since < seq) {
        return None;
    }
    match endpoint.handler {
        Handler::Check => Some(reply::check(if_none_match, seq, now)),
        _ => reply::not_modified(if_none_match, seq).map(Ok),
    }
}

/// What keeps the KV token in step with D1 after a request.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct KvFollowup {
    /// Write this sequence through to KV (after the response).
    pub put: Option<i64>,
    /// KV now agrees with D1 for this user (or will once the put lands).
    pub verified: bool,
}

/// `seen`: the sequence D1 reported in this request, if it was asked; `wrote`: the request
/// committed a change; `kv_seen`: what the KV token held, if it was consulted. Write
/// through after a push, fill after a read that found the token missing or behind. Only
/// while the KV write budget allows.
pub fn kv_followup(seen: Option<i64>, wrote: bool, kv_seen: Option<Option<i64>>, kv_ok: bool) -> KvFollowup {
    let Some(seq) = seen.filter(|_| kv_ok) else { return KvFollowup::default() };
    let stale = kv_seen.is_some_and(|kv| kv != Some(seq));
    KvFollowup { put: (wrote || stale).then_some(seq), verified: wrote || kv_seen.is_some() }
}

/// Whether a request gets its log line: every error, and a `rate` share of the rest
/// (`draw` uniform in [0, 1)).
pub fn logs(status: u16, rate: f64, draw: f64) -> bool {
    status >= 400 || draw < rate
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::endpoints::ENDPOINTS;

    fn ep(h: Handler) -> &'static Endpoint {
        ENDPOINTS.iter().find(|e| e.handler == h).unwrap()
    }

    #[test]
    fn degraded_mode_pauses_reads_and_keeps_writes() {
        let now = 1_000;
        assert!(gate(Access::Read, Mode::Normal, now, 0).is_ok());
        assert!(matches!(gate(Access::Read, Mode::Degraded, now, 0), Err(ApiError::Degraded { writes: false, .. })));
        assert!(gate(Access::Write, Mode::Degraded, now, 0).is_ok());
        assert!(matches!(
            gate(Access::Write, Mode::WritesRefused, now, 0),
            Err(ApiError::Degraded { writes: true, .. })
        ));
        assert!(gate(Access::Meta, Mode::WritesRefused, now, 0).is_ok(), "health stays up");
        assert!(gate(Access::ReadWrite, Mode::WritesRefused, now, 0).is_ok(), "decided by sync_mode");
        match gate(Access::Read, Mode::Degraded, 0, 30) {
            Err(ApiError::Degraded { retry_after, .. }) => assert_eq!(retry_after, 86_400 + 30),
            other => panic!("{other:?}"),
        }
        assert_eq!(sync_mode(Mode::Degraded, true), SyncMode::PushOnly);
        assert_eq!(sync_mode(Mode::Degraded, false), SyncMode::Pause { writes: false });
        assert_eq!(sync_mode(Mode::WritesRefused, true), SyncMode::Pause { writes: true });
        assert_eq!(sync_mode(Mode::Normal, false), SyncMode::Full);
    }

    #[test]
    fn kv_answers_only_what_it_can() {
        let (check, changes, download) = (ep(Handler::Check), ep(Handler::Changes), ep(Handler::Download));
        assert!(consults_kv(check, true, None));
        assert!(!consults_kv(check, false, None), "not while KV cannot be written through");
        assert!(!consults_kv(changes, true, None), "other GETs only when conditional");
        assert!(consults_kv(changes, true, Some("\"s1\"")));
        assert!(!consults_kv(ep(Handler::Sync), true, Some("\"s1\"")));

        let tag = Some("\"s9\"");
        assert_eq!(answer_from_kv(check, Some(9), true, None, tag, 0).unwrap().unwrap().status, 304);
        assert_eq!(answer_from_kv(check, Some(9), true, None, None, 0).unwrap().unwrap().status, 200);
        assert!(answer_from_kv(check, Some(9), false, None, tag, 0).is_none(), "untrusted");
        assert!(answer_from_kv(check, None, true, None, tag, 0).is_none(), "no token");
        assert!(answer_from_kv(download, Some(9), true, None, Some("\"s8\""), 0).is_none(), "no match: ask D1");
        assert!(answer_from_kv(changes, Some(9), true, Some(3), tag, 0).is_none(), "since may be below the horizon");
        assert_eq!(answer_from_kv(changes, Some(9), true, Some(0), tag, 0).unwrap().unwrap().status, 304);
        assert_eq!(answer_from_kv(changes, Some(9), true, Some(9), tag, 0).unwrap().unwrap().status, 304);
    }

    #[test]
    fn errors_are_always_logged_successes_sampled() {
        assert!(logs(500, 0.0, 0.99) && logs(404, 0.0, 0.5), "errors always");
        assert!(logs(200, 1.0, 0.999), "rate 1: every request");
        assert!(!logs(200, 0.0, 0.0), "rate 0: no successes");
        assert!(logs(304, 0.1, 0.05) && !logs(304, 0.1, 0.15));
    }

    #[test]
    fn kv_stays_in_step_with_d1() {
        assert_eq!(kv_followup(Some(5), true, None, true), KvFollowup { put: Some(5), verified: true });
        assert_eq!(kv_followup(Some(5), false, Some(Some(4)), true), KvFollowup { put: Some(5), verified: true });
        assert_eq!(kv_followup(Some(5), false, Some(None), true), KvFollowup { put: Some(5), verified: true });
        assert_eq!(kv_followup(Some(5), false, Some(Some(5)), true), KvFollowup { put: None, verified: true });
        assert_eq!(kv_followup(Some(5), false, None, true), KvFollowup { put: None, verified: false });
        assert_eq!(kv_followup(Some(5), true, None, false), KvFollowup::default(), "KV budget spent");
        assert_eq!(kv_followup(None, false, Some(None), true), KvFollowup::default());
    }
}
