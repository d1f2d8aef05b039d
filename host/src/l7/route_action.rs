//! What a route does to a request besides choosing its pool: the path
//! rewrite before forwarding, and the `Location` of its redirect.

use http::Uri;
use http::request::Parts;
use http::uri::PathAndQuery;

use super::route::Route;
use crate::config::PathRewrite;

/// Rewrites the path of `head` as `route` says (the query string is
/// kept): its `path-prefix` stripped, or the path replaced, with the
/// groups of its `path-regex` when it has one.
pub fn rewrite_path(head: &mut Parts, route: &Route, rewrite: &PathRewrite) {
    let path = head.uri.path();
    let rewritten = match rewrite {
        PathRewrite::StripPrefix => {
            let rest = path.get(route.path_prefix.len()..).unwrap_or_default();
            if rest.starts_with('/') {
                rest.to_owned()
            } else {
                format!("/{rest}")
            }
        }
        PathRewrite::Replace(template) => match route.conditions.path_regex() {
            Some(regex) => regex.replace(path, template.as_str()).into_owned(),
            None => template.clone(),
        },
    };
    let with_query = match head.uri.query() {
        Some(query) => format!("{rewritten}?{query}"),
        None => rewritten,
    };
    // A rewrite that yields an invalid path (a group holding a space)
    // leaves the request as it was rather than forwarding something else.
    if let Ok(path) = PathAndQuery::try_from(with_query) {
        head.uri = Uri::from(path);
    }
}

/// `template` with `{scheme}` (`https` on a TLS listener), `{host}` (the
/// request's authority, without port), `{path}`, `{query}` (`?` and the
/// query, or nothing) and `{uri}` (path and query) expanded.
pub fn redirect_location(template: &str, head: &Parts, host: &str, https: bool) -> String {
    let path = head.uri.path();
    let query = head
        .uri
        .query()
        .map(|q| format!("?{q}"))
        .unwrap_or_default();
    template
        .replace("{scheme}", if https { "https" } else { "http" })
        .replace("{host}", host)
        .replace("{uri}", &format!("{path}{query}"))
        .replace("{path}", path)
        .replace("{query}", &query)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Pattern, RouteConditions};
    use crate::l7::{Conditions, RouteTarget, Split};
    use crate::upstream::BackendPool;

    fn route(prefix: &str, regex: Option<&str>) -> Route {
        let conditions = Conditions::new(&RouteConditions {
            path_regex: regex.map(|r| Pattern::new(r).unwrap()),
            ..RouteConditions::default()
        });
        let target = RouteTarget::Pools(Split::single(BackendPool::empty_for_tests("p")));
        Route::plain(None, prefix, conditions, target)
    }

    fn head(uri: &str) -> Parts {
        http::Request::get(uri).body(()).unwrap().into_parts().0
    }

    fn rewritten(uri: &str, route: &Route, rewrite: PathRewrite) -> String {
        let mut head = head(uri);
        rewrite_path(&mut head, route, &rewrite);
        head.uri.to_string()
    }

    #[test]
    fn prefixes_are_stripped_and_paths_replaced_keeping_the_query() {
        let api = route("/api", None);
        assert_eq!(
            rewritten("/api/users?a=1", &api, PathRewrite::StripPrefix),
            "/users?a=1"
        );
        assert_eq!(rewritten("/api", &api, PathRewrite::StripPrefix), "/");
        let slash = route("/api/", None);
        assert_eq!(
            rewritten("/api/users", &slash, PathRewrite::StripPrefix),
            "/users"
        );
        let fixed = PathRewrite::Replace("/maintenance".into());
        assert_eq!(rewritten("/x?y", &api, fixed), "/maintenance?y");
        let users = route("/", Some("/users/([0-9]+)/(?P<part>[a-z]+)"));
        let template = PathRewrite::Replace("/v2/${part}/$1".into());
        assert_eq!(
            rewritten("/users/42/posts?p=2", &users, template),
            "/v2/posts/42?p=2"
        );
    }

    #[test]
    fn redirect_templates_expand() {
        let head = head("/a/b?c=d");
        assert_eq!(
            redirect_location("https://{host}{uri}", &head, "shop.example", false),
            "https://shop.example/a/b?c=d"
        );
        assert_eq!(
            redirect_location("{scheme}://new.example{path}{query}", &head, "old", true),
            "https://new.example/a/b?c=d"
        );
    }
}
