//! The request pipeline's decisions, pure: which requests degraded mode pauses, and when
//! the KV state token may answer (and with what: only ever "nothing changed" for what the
//! client already holds, see [`Held`]). The worker's `driver` runs the stages
//! (authenticate → rate-limit → degrade gate → body → KV fast path → handler) and asks
//! these functions at each step.

use crate::endpoints::{Access, Endpoint};
use crate::error::ApiError;
use crate::parse::Call;
use crate::quota::{retry_after_midnight, Mode, Quotas, Usage};
use crate::reply::{self, Page, Reply, SyncReply};

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

/// What a client already holds that the KV state token may confirm unchanged.
///
/// **The one safety rule of the KV token:** it may only answer "nothing changed", and only
/// when it *equals what the client already holds* (its `If-None-Match` tag, or the cursor
/// of an idle `POST /api/sync`). A KV value is never handed to a client as a new cursor or
/// ETag. The token is written *ahead* of the D1 commit that reaches it (see the worker's
/// `state_cache`), so a token whose commit failed (a crash, a lost race) is a phantom
/// sequence no client holds: it matches nobody and costs a D1 read, never a missed change.
/// A token can only be *behind* D1 when its write was skipped or lost (the KV write
/// budget, KV's one write per second per key, racing pushes landing out of order, another
/// location's 60 s propagation); it then lives at most `STATE_CACHE_TTL` seconds, which is
/// the staleness bound: a device may be told "nothing changed" for at most that long after
/// a change, and its next pull after that finds the change by cursor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Held<'a> {
    /// A conditional GET's `If-None-Match`; `since` of a delta pull.
    Tag { tag: &'a str, since: Option<i64> },
    /// The cursor of a `POST /api/sync` without changes.
    Cursor(i64),
}

/// Whether the KV token is worth a read for this call, and against what: conditional GETs
/// (the check included, only with `If-None-Match`: an unconditional check wants the state
/// itself, which only D1 may give), and an idle `POST /api/sync` from a cursor past 0 in
/// normal mode (degraded mode pauses it before any answer). `kv_ok`: both KV budgets allow
/// KV use (near either one the worker stops reading KV and answers from D1; a token that
/// can no longer be written ahead of commits is not trusted either).
pub fn kv_question<'a>(
    endpoint: &Endpoint,
    call: &Call,
    if_none_match: Option<&'a str>,
    mode: Mode,
    kv_ok: bool,
) -> Option<Held<'a>> {
    if !kv_ok {
        return None;
    }
    match call {
        Call::Sync(req) if req.changes.is_empty() && req.cursor > 0 && mode == Mode::Normal => {
            Some(Held::Cursor(req.cursor))
        }
        _ if endpoint.conditional => {
            let since = match call {
                Call::Changes { since, .. } => Some(*since),
                _ => None,
            };
            if_none_match.map(|tag| Held::Tag { tag, since })
        }
        _ => None,
    }
}

/// The answer the KV token gives, if it can (`cached`: the token, written today). Only
/// ever "nothing changed" for what the client holds (see [`Held`]): a 304 for a matching
/// tag, an empty `SyncReply` at the client's own cursor. A delta pull is answered only
/// from `since` 0 or at or past the cached state: another `since` may be below the purge
/// horizon, which only D1 knows. `None`: ask D1.
pub fn answer_from_kv(held: Held<'_>, cached: Option<i64>, now: i64) -> Option<Result<Reply, ApiError>> {
    let seq = cached?;
    match held {
        Held::Tag { since: Some(since), .. } if since != 0 && since < seq => None,
        Held::Tag { tag, .. } => reply::not_modified(Some(tag), seq).map(Ok),
        Held::Cursor(cursor) if cursor == seq => {
            Some(Reply::json(200, &SyncReply::new(&[], &[], &Page::cut(Vec::new(), 0, seq), now)))
        }
        Held::Cursor(_) => None,
    }
}

/// Whether the rate limiter may write KV: under half of the threshold at which the state
/// token stops being written, so that throttled clients (about one write a second while
/// they are hammering) cannot spend the KV write budget the state token needs.
pub fn limiter_writes_ok(q: &Quotas, u: &Usage) -> bool {
    (u.kv_writes as f64) < q.kv_writes as f64 * q.degrade_at / 2.0
}

/// Whether a request gets its log line: every error, and a `rate` share of the rest
/// (`draw` uniform in [0, 1)).
pub fn logs(status: u16, rate: f64, draw: f64) -> bool {
    status >= 400 || draw < rate
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::endpoints::{Handler, ENDPOINTS};

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

    fn sync(cursor: i64, changes: bool) -> Call {
        let changes = if changes {
            crate::parse::parse_sync(
                &serde_json::json!({"changes": [{"type": "tasks", "id": "t", "title": "x"}]}),
                crate::parse::Limits { max_changes: 10, max_upload_records: 10 },
            )
            .unwrap()
            .changes
        } else {
            Vec::new()
        };
        Call::Sync(crate::parse::SyncRequest { cursor, changes, limit: 100 })
    }

    #[test]
    fn kv_is_asked_only_about_what_the_client_holds() {
        let (check, changes, download, post) =
            (ep(Handler::Check), ep(Handler::Changes), ep(Handler::Download), ep(Handler::Sync));
        let tag = Some("\"s1\"");
        let n = Mode::Normal;
        assert_eq!(kv_question(check, &Call::Check, tag, n, true), Some(Held::Tag { tag: "\"s1\"", since: None }));
        assert_eq!(kv_question(check, &Call::Check, None, n, true), None, "an unconditional check asks D1");
        assert_eq!(kv_question(check, &Call::Check, tag, n, false), None, "not near a KV budget");
        let ch = Call::Changes { entity: crate::entities::entity("tasks").unwrap(), since: 4, limit: 10 };
        assert_eq!(kv_question(changes, &ch, tag, n, true), Some(Held::Tag { tag: "\"s1\"", since: Some(4) }));
        assert_eq!(kv_question(changes, &ch, None, n, true), None, "other GETs only when conditional");
        let dl = Call::Download(crate::entities::entity("tasks").unwrap(), crate::parse::Query::default());
        assert!(kv_question(download, &dl, tag, n, true).is_some());
        assert_eq!(kv_question(post, &sync(7, false), None, n, true), Some(Held::Cursor(7)));
        assert_eq!(kv_question(post, &sync(7, false), tag, n, true), Some(Held::Cursor(7)), "POST: the cursor");
        assert_eq!(kv_question(post, &sync(7, true), None, n, true), None, "a push goes to D1");
        assert_eq!(kv_question(post, &sync(0, false), None, n, true), None, "from 0 there is no token to match");
        assert_eq!(kv_question(post, &sync(7, false), None, Mode::Degraded, true), None, "paused, not answered");
        assert_eq!(kv_question(post, &sync(7, false), None, n, false), None);
    }

    #[test]
    fn kv_answers_only_nothing_changed_for_what_the_client_holds() {
        let tag = |since| Held::Tag { tag: "\"s9\"", since };
        assert_eq!(answer_from_kv(tag(None), Some(9), 0).unwrap().unwrap().status, 304);
        assert!(answer_from_kv(tag(None), Some(10), 0).is_none(), "another token (newer, or a phantom): ask D1");
        assert!(answer_from_kv(tag(None), None, 0).is_none(), "no token");
        let any = Held::Tag { tag: "*", since: None };
        assert_eq!(answer_from_kv(any, Some(9), 0).unwrap().unwrap().status, 304, "* matches any state, as in D1");
        assert!(answer_from_kv(tag(Some(3)), Some(9), 0).is_none(), "since may be below the horizon");
        assert_eq!(answer_from_kv(tag(Some(0)), Some(9), 0).unwrap().unwrap().status, 304);
        assert_eq!(answer_from_kv(tag(Some(9)), Some(9), 0).unwrap().unwrap().status, 304);

        let idle = answer_from_kv(Held::Cursor(9), Some(9), 5).unwrap().unwrap();
        assert_eq!(idle.status, 200);
        let body: serde_json::Value = serde_json::from_str(idle.body.as_deref().unwrap()).unwrap();
        assert_eq!(
            body,
            serde_json::json!({"applied": [], "conflicts": [], "updates": [], "deleted": [], "cursor": 9,
                "has_more": false, "etag": "\"s9\"", "server_time": 5})
        );
        let page = Page::cut(Vec::new(), 100, 9);
        let from_d1 = serde_json::to_value(SyncReply::new(&[], &[], &page, 5)).unwrap();
        assert_eq!(body, from_d1, "the same reply D1 gives an idle sync at its cursor");
        assert!(answer_from_kv(Held::Cursor(8), Some(9), 5).is_none(), "something changed: D1 pulls it");
        assert!(answer_from_kv(Held::Cursor(10), Some(9), 5).is_none());
        assert!(answer_from_kv(Held::Cursor(9), None, 5).is_none());
    }

    #[test]
    fn the_limiter_leaves_the_state_token_its_share_of_kv_writes() {
        let q = Quotas { kv_writes: 1_000, ..Quotas::default() };
        let at = |kv_writes| Usage { kv_writes, ..Usage::default() };
        assert!(limiter_writes_ok(&q, &at(449)));
        assert!(!limiter_writes_ok(&q, &at(450)), "half of the 90 % threshold");
        assert!(q.kv_writes_ok(&at(450)), "the state token is still written");
    }

    #[test]
    fn errors_are_always_logged_successes_sampled() {
        assert!(logs(500, 0.0, 0.99) && logs(404, 0.0, 0.5), "errors always");
        assert!(logs(200, 1.0, 0.999), "rate 1: every request");
        assert!(!logs(200, 0.0, 0.0), "rate 0: no successes");
        assert!(logs(304, 0.1, 0.05) && !logs(304, 0.1, 0.15));
    }
}
