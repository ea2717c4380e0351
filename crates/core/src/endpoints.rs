//! The endpoint table: every endpoint the worker serves, declared once — method, path,
//! who may call it, its query parameters, its body, whether it reads or writes (for
//! degradation) and its OpenAPI description. Dispatch (`edgesync-worker`'s `handlers`),
//! the degradation gate (`pipeline`), query parsing (`parse::query`) and the OpenAPI
//! document (`openapi`) all read it. Matching is by path segments; `{type}` captures one.

/// The handler an endpoint runs; `edgesync-worker` matches on it exhaustively, so a new
/// endpoint does not compile until it has one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handler {
    Health,
    Check,
    Sync,
    Download,
    Upload,
    Changes,
    Delta,
    AdminUsage,
    AdminReshard,
    AdminRecords,
    OpenApi,
    DevLogin,
}

/// Who may call an endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Auth {
    Public,
    /// `Authorization: Bearer <JWT>`; the `sub` claim is the user.
    User,
    /// `Authorization: Bearer <ADMIN_TOKEN>`; the endpoint is 404 when no admin token is set.
    Admin,
    /// Served only when `DEV_MODE = "1"`; otherwise 404 like an unknown path.
    Dev,
}

/// What an endpoint does to the user's data, which decides what degraded mode lets through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Touches no user data (health, the document, admin, dev): never paused.
    Meta,
    /// Reads: paused in degraded mode.
    Read,
    /// Writes: paused only when the D1 write quota is spent.
    Write,
    /// Pushes and pulls in one call (`POST /api/sync`): the push is taken in degraded
    /// mode, the pull is left out; the handler decides once the body is parsed.
    ReadWrite,
}

/// A query parameter an endpoint accepts; any other name is a 400.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Param {
    /// `since`: a cursor, required.
    Since,
    /// `limit`: page size, `1..=MAX_LIMIT`, default `DEFAULT_LIMIT`.
    Limit,
    /// `after`: the last id of the previous page.
    After,
    /// `user`: a user id (the admin export), required.
    User,
}

impl Param {
    pub const fn name(self) -> &'static str {
        match self {
            Param::Since => "since",
            Param::Limit => "limit",
            Param::After => "after",
            Param::User => "user",
        }
    }
}

/// The request body an endpoint takes (always `application/json`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Body {
    None,
    Sync,
    FullUpload,
    DeltaPush,
    DevLogin,
    Reshard,
}

#[derive(Debug, PartialEq)]
pub struct Endpoint {
    pub method: &'static str,
    pub path: &'static str,
    pub handler: Handler,
    pub auth: Auth,
    pub access: Access,
    pub query: &'static [Param],
    pub body: Body,
    /// `If-None-Match` is honoured: a matching state token gives 304.
    pub conditional: bool,
    /// Other paths for the same endpoint (the briefs' unprefixed `/sync` forms).
    pub aliases: &'static [&'static str],
    /// One line for the OpenAPI document.
    pub summary: &'static str,
    /// The OpenAPI component schemas of the request body and the 200 reply, and what the
    /// reply is; `{T}` stands for the collection of a per-type path (`TasksDeltaPush`).
    pub request_schema: Option<&'static str>,
    pub reply_schema: &'static str,
    pub reply: &'static str,
}

const fn endpoint(method: &'static str, path: &'static str, handler: Handler, auth: Auth) -> Endpoint {
    Endpoint {
        method,
        path,
        handler,
        auth,
        access: Access::Meta,
        query: &[],
        body: Body::None,
        conditional: false,
        aliases: &[],
        summary: "",
        request_schema: None,
        reply_schema: "",
        reply: "",
    }
}

impl Endpoint {
    const fn reads(mut self, query: &'static [Param], conditional: bool) -> Self {
        self.access = Access::Read;
        self.query = query;
        self.conditional = conditional;
        self
    }
    /// Query parameters of an endpoint that touches no user's data as a user does.
    const fn queries(mut self, query: &'static [Param]) -> Self {
        self.query = query;
        self
    }
    const fn takes(mut self, access: Access, body: Body) -> Self {
        self.access = access;
        self.body = body;
        self
    }
    const fn alias(mut self, aliases: &'static [&'static str]) -> Self {
        self.aliases = aliases;
        self
    }
    const fn says(mut self, summary: &'static str) -> Self {
        self.summary = summary;
        self
    }
    const fn doc(
        mut self,
        request_schema: Option<&'static str>,
        reply: &'static str,
        reply_schema: &'static str,
    ) -> Self {
        self.request_schema = request_schema;
        self.reply = reply;
        self.reply_schema = reply_schema;
        self
    }

    /// `true` for the per-type endpoints (`{type}` in the path).
    pub fn per_type(&self) -> bool {
        self.path.contains("{type}")
    }

    /// Every path this endpoint answers on.
    pub fn paths(&self) -> impl Iterator<Item = &'static str> + '_ {
        std::iter::once(self.path).chain(self.aliases.iter().copied())
    }
}

use Access::{ReadWrite, Write};
use Param::{After, Limit, Since, User};

// The table, one endpoint per entry, kept as written.
#[rustfmt::skip]
pub static ENDPOINTS: &[Endpoint] = &[
    endpoint("GET", "/api/health", Handler::Health, Auth::Public)
        .says("Health and degradation state")
        .doc(None, "healthy", "Health"),
    endpoint("GET", "/api/sync/check", Handler::Check, Auth::User)
        .reads(&[], true)
        .alias(&["/sync/check"])
        .says("State check: 304 when nothing changed")
        .doc(None, "the current state token", "Check"),
    endpoint("POST", "/api/sync", Handler::Sync, Auth::User)
        .takes(ReadWrite, Body::Sync)
        .alias(&["/sync"])
        .says("Combined push and pull of every type")
        .doc(Some("SyncRequest"), "applied, conflicts and the changes since the cursor", "SyncResponse"),
    endpoint("GET", "/api/sync/{type}", Handler::Download, Auth::User)
        .reads(&[Limit, After], true)
        .says("Full download of a type's live records, paged by id")
        .doc(None, "one page", "{T}DownloadResponse"),
    endpoint("POST", "/api/sync/{type}", Handler::Upload, Auth::User)
        .takes(Write, Body::FullUpload)
        .says("Full upload: replace a type's live set")
        .doc(Some("{T}FullUpload"), "replaced", "FullUploadResponse"),
    endpoint("GET", "/api/sync/{type}/changes", Handler::Changes, Auth::User)
        .reads(&[Since, Limit], true)
        .says("Delta pull of a type after a cursor")
        .doc(None, "one page of changes", "{T}ChangesResponse"),
    endpoint("POST", "/api/sync/{type}/delta", Handler::Delta, Auth::User)
        .takes(Write, Body::DeltaPush)
        .says("Delta push of a type")
        .doc(Some("{T}DeltaPush"), "processed", "DeltaResponse"),
    endpoint("GET", "/api/admin/usage", Handler::AdminUsage, Auth::Admin)
        .says("Today's usage against each quota")
        .doc(None, "usage report", "UsageReport"),
    endpoint("POST", "/api/admin/reshard", Handler::AdminReshard, Auth::Admin)
        .takes(Access::Meta, Body::Reshard)
        .says("One step of moving a bucket of users to another D1 database (npm run reshard)")
        .doc(Some("ReshardRequest"), "what the step did", "ReshardReply"),
    endpoint("GET", "/api/admin/records", Handler::AdminRecords, Auth::Admin)
        .queries(&[User])
        .says("A user's current records, tombstones flagged (operators' export: page bodies are deflated)")
        .doc(None, "the user's records", "RecordsExport"),
    endpoint("GET", "/api/openapi.json", Handler::OpenApi, Auth::Public).says("This document").doc(
        None,
        "OpenAPI 3.1",
        "OpenApiDocument",
    ),
    endpoint("POST", "/api/dev/login", Handler::DevLogin, Auth::Dev)
        .takes(Access::Meta, Body::DevLogin)
        .says("Development only (DEV_MODE=1): a signed token for any user name")
        .doc(Some("DevLoginRequest"), "a signed token", "DevLogin"),
];

/// Outcome of matching a request line against [`ENDPOINTS`].
#[derive(Debug, PartialEq)]
pub enum Match<'p> {
    Found {
        endpoint: &'static Endpoint,
        param: Option<&'p str>,
    },
    /// The path exists but not for this method; carries the `Allow` value.
    WrongMethod(&'static str),
    NotFound,
}

/// The parameter a per-type pattern holds (at most one, as a whole segment).
const PARAM: &str = "{type}";

/// `pattern` against `path`: equal strings, or equal around the one [`PARAM`] segment,
/// which gives the path's segment there (not empty). Compared as whole strings, not
/// segment by segment: this runs for every pattern on every request.
fn match_path<'p>(pattern: &str, path: &'p str) -> Option<Option<&'p str>> {
    let Some(at) = pattern.bytes().position(|b| b == b'{') else {
        return (pattern == path).then_some(None);
    };
    let (before, after) = (&pattern[..at], pattern[at..].strip_prefix(PARAM)?);
    let rest = path.strip_prefix(before)?;
    let (segment, tail) = rest.split_at(rest.bytes().position(|b| b == b'/').unwrap_or(rest.len()));
    (!segment.is_empty() && tail == after).then_some(Some(segment))
}

/// The endpoints one kind of path (literal, or a pattern) matched: the first for the
/// request's method, how many matched, and the method of the last.
struct Hits<'p> {
    found: Option<(&'static Endpoint, Option<&'p str>)>,
    count: usize,
    last: &'static str,
}

impl<'p> Hits<'p> {
    const NONE: Hits<'static> = Hits { found: None, count: 0, last: "" };

    fn add(&mut self, endpoint: &'static Endpoint, param: Option<&'p str>, method: &str) {
        if self.found.is_none() && endpoint.method == method {
            self.found = Some((endpoint, param));
        }
        self.count += 1;
        self.last = endpoint.method;
    }
}

/// HEAD is served as GET (the runtime drops the body). A literal path wins over a
/// pattern, so `/api/sync/check` is never read as a type named "check". Endpoints the
/// deployment does not serve (`Auth::Dev` without `DEV_MODE`) are left out by `serves`.
/// One pass over the table, nothing allocated.
pub fn resolve<'p>(method: &str, path: &'p str, serves: impl Fn(&Endpoint) -> bool) -> Match<'p> {
    let method = if method == "HEAD" { "GET" } else { method };
    let path = if path.len() > 1 { path.trim_end_matches('/') } else { path };
    let (mut literal, mut pattern) = (Hits::NONE, Hits::NONE);
    for endpoint in ENDPOINTS.iter().filter(|e| serves(e)) {
        for p in endpoint.paths() {
            match match_path(p, path) {
                Some(None) => literal.add(endpoint, None, method),
                Some(param) => pattern.add(endpoint, param, method),
                None => {}
            }
        }
    }
    let hits = if literal.count > 0 { literal } else { pattern };
    if let Some((endpoint, param)) = hits.found {
        return Match::Found { endpoint, param };
    }
    match (hits.count, hits.last) {
        (0, _) => Match::NotFound,
        (1, "GET") => Match::WrongMethod("GET, HEAD"),
        (1, "POST") => Match::WrongMethod("POST"),
        _ => Match::WrongMethod("GET, HEAD, POST"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(_: &Endpoint) -> bool {
        true
    }

    fn handler(m: &str, p: &str) -> Option<(Handler, Option<String>)> {
        match resolve(m, p, all) {
            Match::Found { endpoint, param } => Some((endpoint.handler, param.map(str::to_string))),
            _ => None,
        }
    }

    #[test]
    fn table() {
        assert_eq!(handler("GET", "/api/health"), Some((Handler::Health, None)));
        assert_eq!(handler("GET", "/api/sync/check"), Some((Handler::Check, None)));
        assert_eq!(handler("HEAD", "/sync/check"), Some((Handler::Check, None)));
        assert_eq!(handler("POST", "/sync"), Some((Handler::Sync, None)));
        assert_eq!(handler("GET", "/api/sync/notes"), Some((Handler::Download, Some("notes".into()))));
        assert_eq!(handler("GET", "/api/sync/notes/"), Some((Handler::Download, Some("notes".into()))));
        assert_eq!(handler("GET", "/api/sync/tasks/changes"), Some((Handler::Changes, Some("tasks".into()))));
        assert_eq!(handler("POST", "/api/sync/tasks/delta"), Some((Handler::Delta, Some("tasks".into()))));
        assert_eq!(handler("GET", "/api/admin/usage"), Some((Handler::AdminUsage, None)));
        assert_eq!(handler("POST", "/api/admin/reshard"), Some((Handler::AdminReshard, None)));
        assert_eq!(handler("GET", "/api/admin/records"), Some((Handler::AdminRecords, None)));
        assert_eq!(handler("POST", "/api/dev/login"), Some((Handler::DevLogin, None)));
    }

    #[test]
    fn misses() {
        assert_eq!(resolve("DELETE", "/api/sync", all), Match::WrongMethod("POST"));
        assert_eq!(resolve("POST", "/api/sync/check", all), Match::WrongMethod("GET, HEAD"));
        assert_eq!(resolve("PUT", "/api/sync/tasks", all), Match::WrongMethod("GET, HEAD, POST"));
        assert_eq!(resolve("GET", "/api/nope", all), Match::NotFound);
        assert_eq!(resolve("GET", "/api/sync//changes", all), Match::NotFound);
        assert_eq!(resolve("GET", "/api/sync/tasks/changes/x", all), Match::NotFound);
    }

    #[test]
    fn endpoints_left_out_are_not_found() {
        let no_dev = |e: &Endpoint| e.auth != Auth::Dev;
        assert_eq!(resolve("POST", "/api/dev/login", no_dev), Match::NotFound);
        assert_eq!(resolve("GET", "/api/dev/login", no_dev), Match::NotFound);
    }

    #[test]
    fn declarations_are_consistent() {
        for e in ENDPOINTS {
            assert!(
                !e.summary.is_empty() && !e.reply.is_empty() && !e.reply_schema.is_empty(),
                "{} is documented",
                e.path
            );
            assert_eq!(e.request_schema.is_some(), e.body != Body::None, "{}: a body has a schema", e.path);
            let templated = |s: &str| s.contains("{T}");
            assert!(e.per_type() || !templated(e.reply_schema), "{}: {{T}} only on per-type paths", e.path);
            assert_eq!(e.body != Body::None, e.method == "POST", "{}: POST endpoints take a body", e.path);
            assert_eq!(e.access == Access::Read, e.method == "GET" && e.auth == Auth::User, "{}", e.path);
            assert!(!e.conditional || e.method == "GET", "{}", e.path);
        }
    }

    /// Patterns hold `{type}` at most once, as a whole segment (what `match_path` assumes).
    #[test]
    fn patterns_hold_one_whole_param() {
        for p in ENDPOINTS.iter().flat_map(Endpoint::paths) {
            assert!(p.starts_with('/') && (p == "/" || !p.ends_with('/')), "{p}");
            let braces = p.matches('{').count();
            assert_eq!(braces, p.matches(PARAM).count(), "{p}: only {PARAM} in braces");
            assert!(braces <= 1, "{p}: one parameter at most");
            if let Some(at) = p.find(PARAM) {
                let after = &p[at + PARAM.len()..];
                assert!(p[..at].ends_with('/') && (after.is_empty() || after.starts_with('/')), "{p}");
            }
        }
    }

    /// The matcher as it was (segment by segment, every hit collected), the oracle for
    /// the one-pass `resolve`.
    fn resolve_by_segments<'p>(method: &str, path: &'p str, serves: impl Fn(&Endpoint) -> bool) -> Match<'p> {
        fn segments<'p>(pattern: &str, path: &'p str) -> Option<Option<&'p str>> {
            let (mut pat, mut got) = (pattern.split('/'), path.split('/'));
            let mut param = None;
            loop {
                match (pat.next(), got.next()) {
                    (None, None) => return Some(param),
                    (Some("{type}"), Some(seg)) if !seg.is_empty() => param = Some(seg),
                    (Some(a), Some(b)) if a == b => {}
                    _ => return None,
                }
            }
        }
        let method = if method == "HEAD" { "GET" } else { method };
        let path = if path.len() > 1 { path.trim_end_matches('/') } else { path };
        let hits: Vec<(&'static Endpoint, Option<&'p str>)> = ENDPOINTS
            .iter()
            .filter(|e| serves(e))
            .flat_map(|e| e.paths().filter_map(move |p| segments(p, path).map(|param| (e, param))))
            .collect();
        let literal = hits.iter().any(|(_, p)| p.is_none());
        let hits: Vec<_> = hits.into_iter().filter(|(_, p)| !literal || p.is_none()).collect();
        if let Some((endpoint, param)) = hits.iter().find(|(e, _)| e.method == method) {
            return Match::Found { endpoint, param: *param };
        }
        match hits.iter().map(|(e, _)| e.method).collect::<Vec<_>>().as_slice() {
            [] => Match::NotFound,
            ["GET"] => Match::WrongMethod("GET, HEAD"),
            ["POST"] => Match::WrongMethod("POST"),
            _ => Match::WrongMethod("GET, HEAD, POST"),
        }
    }

    /// Every declared path with its parameter as a name, a literal word, empty, two
    /// segments; cut short, extended, with slashes added; under every method.
    #[test]
    fn one_pass_resolve_agrees_with_segment_matching() {
        let mut paths: Vec<String> = ["", "/", "//", "/api", "/api/", "/api/sync/", "/sync/", "x", "/api/sync/{"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        for p in ENDPOINTS.iter().flat_map(Endpoint::paths) {
            for name in ["tasks", "notes", "check", "changes", "", "a/b", "{type}", "t%2Fx", "tasks/"] {
                let p = p.replace(PARAM, name);
                for q in
                    [p.clone(), format!("{p}/"), format!("{p}//"), format!("/{p}"), format!("{p}/x"), format!("{p}x")]
                {
                    paths.push(q);
                }
                for cut in 0..p.len() {
                    paths.push(p[..cut].to_string());
                }
            }
        }
        let no_dev = |e: &Endpoint| e.auth != Auth::Dev;
        let mut compared = 0;
        for path in &paths {
            for method in ["GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "get", ""] {
                assert_eq!(resolve(method, path, all), resolve_by_segments(method, path, all), "{method} {path:?}");
                assert_eq!(
                    resolve(method, path, no_dev),
                    resolve_by_segments(method, path, no_dev),
                    "{method} {path:?}"
                );
                compared += 1;
            }
        }
        assert!(compared > 5_000, "{compared}");
    }
}
