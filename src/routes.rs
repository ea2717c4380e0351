//! The routing table: every route the worker serves, in one place (the OpenAPI test
//! compares against it). Matching is by path segments; `{type}` captures one segment.

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
    OpenApi,
}

#[derive(Debug, PartialEq)]
pub struct Route {
    pub method: &'static str,
    pub path: &'static str,
    pub handler: Handler,
    pub auth: Auth,
}

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Auth {
    Public,
    /// `Authorization: Bearer <JWT>`; the `sub` claim is the user.
    User,
    /// `Authorization: Bearer <ADMIN_TOKEN>`; the route is 404 when no admin token is set.
    Admin,
}

const fn route(method: &'static str, path: &'static str, handler: Handler, auth: Auth) -> Route {
    Route { method, path, handler, auth }
}

pub static ROUTES: &[Route] = &[
    route("GET", "/api/health", Handler::Health, Auth::Public),
    route("GET", "/api/sync/check", Handler::Check, Auth::User),
    route("GET", "/sync/check", Handler::Check, Auth::User),
    route("POST", "/api/sync", Handler::Sync, Auth::User),
    route("POST", "/sync", Handler::Sync, Auth::User),
    route("GET", "/api/sync/{type}", Handler::Download, Auth::User),
    route("POST", "/api/sync/{type}", Handler::Upload, Auth::User),
    route("GET", "/api/sync/{type}/changes", Handler::Changes, Auth::User),
    route("POST", "/api/sync/{type}/delta", Handler::Delta, Auth::User),
    route("GET", "/api/admin/usage", Handler::AdminUsage, Auth::Admin),
    route("GET", "/api/openapi.json", Handler::OpenApi, Auth::Public),
];

/// Outcome of matching a request line against [`ROUTES`].
#[derive(Debug, PartialEq)]
pub enum Match<'p> {
    Found { route: &'static Route, param: Option<&'p str> },
    /// The path exists but not for this method; carries the `Allow` value.
    WrongMethod(&'static str),
    NotFound,
}

fn match_path<'p>(pattern: &str, path: &'p str) -> Option<Option<&'p str>> {
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

/// HEAD is served as GET (the runtime drops the body). A literal path wins over a
/// pattern, so `/api/sync/check` is never read as a type named "check".
pub fn resolve<'p>(method: &str, path: &'p str) -> Match<'p> {
    let method = if method == "HEAD" { "GET" } else { method };
    let path = if path.len() > 1 { path.trim_end_matches('/') } else { path };
    let hits: Vec<(&'static Route, Option<&'p str>)> =
        ROUTES.iter().filter_map(|r| match_path(r.path, path).map(|p| (r, p))).collect();
    let literal = hits.iter().any(|(_, p)| p.is_none());
    let hits: Vec<_> = hits.into_iter().filter(|(_, p)| !literal || p.is_none()).collect();
    if let Some((route, param)) = hits.iter().find(|(r, _)| r.method == method) {
        return Match::Found { route, param: *param };
    }
    match hits.iter().map(|(r, _)| r.method).collect::<Vec<_>>().as_slice() {
        [] => Match::NotFound,
        ["GET"] => Match::WrongMethod("GET, HEAD"),
        ["POST"] => Match::WrongMethod("POST"),
        _ => Match::WrongMethod("GET, HEAD, POST"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn handler(m: &str, p: &str) -> Option<(Handler, Option<String>)> {
        match resolve(m, p) {
            Match::Found { route, param } => Some((route.handler, param.map(str::to_string))),
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
    }

    #[test]
    fn misses() {
        assert_eq!(resolve("DELETE", "/api/sync"), Match::WrongMethod("POST"));
        assert_eq!(resolve("POST", "/api/sync/check"), Match::WrongMethod("GET, HEAD"));
        assert_eq!(resolve("PUT", "/api/sync/tasks"), Match::WrongMethod("GET, HEAD, POST"));
        assert_eq!(resolve("GET", "/api/nope"), Match::NotFound);
        assert_eq!(resolve("GET", "/api/sync//changes"), Match::NotFound);
        assert_eq!(resolve("GET", "/api/sync/tasks/changes/x"), Match::NotFound);
    }
}
