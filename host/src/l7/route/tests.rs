use super::*;
use crate::config::RouteConditions;
use crate::upstream::BackendPool;

fn pool(name: &str) -> Arc<BackendPool> {
    BackendPool::empty_for_tests(name)
}

fn route(host: Option<HostPattern>, prefix: &str, conditions: RouteConditions, to: &str) -> Route {
    let target = RouteTarget::Pools(Split::single(pool(to)));
    Route::plain(host, prefix, Conditions::new(&conditions), target)
}

fn exact(name: &str) -> Option<HostPattern> {
    Some(HostPattern::Exact(name.into()))
}

fn head(method: &str, path: &str) -> Parts {
    http::Request::builder()
        .method(method)
        .uri(path)
        .body(())
        .unwrap()
        .into_parts()
        .0
}

fn found(table: &RouteTable, host: Option<&str>, method: &str, path: &str) -> Option<String> {
    let route = table.find(host, &head(method, path))?;
    match &route.target {
        RouteTarget::Pools(split) => Some(split.pools()[0].0.name().to_string()),
        _ => None,
    }
}

fn table() -> RouteTable {
    RouteTable::new(
        vec![
            route(exact("api.test"), "/", RouteConditions::default(), "api"),
            route(
                Some(HostPattern::Wildcard(".cdn.test".into())),
                "/static",
                RouteConditions::default(),
                "cdn",
            ),
            route(
                None,
                "/admin",
                RouteConditions {
                    methods: vec!["POST".into()],
                    ..RouteConditions::default()
                },
                "admin-writes",
            ),
            route(None, "/admin", RouteConditions::default(), "admin"),
            route(
                Some(HostPattern::Wildcard(".test".into())),
                "/",
                RouteConditions::default(),
                "any-test",
            ),
        ],
        PathPolicy::default(),
    )
}

#[test]
fn first_matching_route_wins_across_the_index() {
    let table = table();
    let at = |host, method, path| found(&table, host, method, path);
    assert_eq!(
        at(Some("api.test"), "GET", "/admin").as_deref(),
        Some("api")
    );
    assert_eq!(
        at(Some("x.cdn.test"), "GET", "/static/a.css").as_deref(),
        Some("cdn")
    );
    // A host-less route declared before a wildcard one wins over it.
    assert_eq!(
        at(Some("x.cdn.test"), "GET", "/admin").as_deref(),
        Some("admin")
    );
    assert_eq!(
        at(Some("x.cdn.test"), "POST", "/admin").as_deref(),
        Some("admin-writes")
    );
    assert_eq!(at(None, "GET", "/admin/users").as_deref(), Some("admin"));
    // Wildcards at any depth, never the bare suffix.
    assert_eq!(
        at(Some("x.cdn.test"), "GET", "/other").as_deref(),
        Some("any-test")
    );
    assert_eq!(
        at(Some("a.b.c.test"), "GET", "/").as_deref(),
        Some("any-test")
    );
    assert_eq!(at(Some("test"), "GET", "/"), None);
    assert_eq!(at(None, "GET", "/"), None);
}

#[test]
fn a_thousand_host_routes_find_their_own() {
    let mut routes: Vec<Route> = (0..1000)
        .map(|n| {
            route(
                exact(&format!("host{n}.example.com")),
                "/",
                RouteConditions::default(),
                &format!("pool{n}"),
            )
        })
        .collect();
    routes.push(route(None, "/", RouteConditions::default(), "fallback"));
    let table = RouteTable::new(routes, PathPolicy::default());
    for n in [0, 1, 499, 999] {
        let host = format!("host{n}.example.com");
        assert_eq!(
            found(&table, Some(&host), "GET", "/x"),
            Some(format!("pool{n}"))
        );
    }
    assert_eq!(
        found(&table, Some("other.example.com"), "GET", "/").as_deref(),
        Some("fallback")
    );
}

#[test]
fn deep_wildcard_levels_fall_back_to_a_scan() {
    // Ten wildcard levels all matching one host: more than the merge takes.
    let host = "a.b.c.d.e.f.g.h.i.j.k.test";
    let mut routes: Vec<Route> = host
        .match_indices('.')
        .map(|(at, _)| {
            route(
                Some(HostPattern::Wildcard(host[at..].to_owned())),
                "/never",
                RouteConditions::default(),
                "never",
            )
        })
        .collect();
    routes.push(route(
        Some(HostPattern::Wildcard(".test".into())),
        "/",
        RouteConditions::default(),
        "outermost",
    ));
    let table = RouteTable::new(routes, PathPolicy::default());
    assert_eq!(
        found(&table, Some(host), "GET", "/x").as_deref(),
        Some("outermost")
    );
}

#[test]
fn many_regex_routes_answer_from_one_set_in_config_order() {
    let regex = |pattern: &str| RouteConditions {
        path_regex: Some(crate::config::Pattern::new(pattern).unwrap()),
        ..RouteConditions::default()
    };
    let table = RouteTable::new(
        vec![
            route(None, "/", regex("/users/[0-9]+"), "users"),
            route(None, "/", regex("/items/[a-z]+"), "items-by-name"),
            route(None, "/", regex("/items/.*"), "items"),
            route(None, "/", RouteConditions::default(), "fallback"),
        ],
        PathPolicy::default(),
    );
    let at = |path| found(&table, Some("a.test"), "GET", path);
    assert_eq!(at("/users/42").as_deref(), Some("users"));
    assert_eq!(
        at("/items/abc").as_deref(),
        Some("items-by-name"),
        "first match wins"
    );
    assert_eq!(at("/items/42").as_deref(), Some("items"));
    assert_eq!(
        at("/users/x").as_deref(),
        Some("fallback"),
        "anchored in the set too"
    );
}

#[test]
fn a_header_found_missing_once_decides_every_later_test_of_it() {
    use crate::config::{FieldCondition, ValueTest};
    let on_variant = |test: ValueTest, to: &str| {
        route(
            None,
            "/",
            RouteConditions {
                headers: vec![FieldCondition {
                    name: "x-variant".into(),
                    test,
                }],
                ..RouteConditions::default()
            },
            to,
        )
    };
    let table = RouteTable::new(
        vec![
            on_variant(ValueTest::Exact("1".into()), "one"),
            on_variant(ValueTest::Present, "present"),
            on_variant(ValueTest::Absent, "absent"),
        ],
        PathPolicy::default(),
    );
    let with = |value: Option<&str>| {
        let mut request = http::Request::get("/");
        if let Some(value) = value {
            request = request.header("x-variant", value);
        }
        let head = request.body(()).unwrap().into_parts().0;
        match &table.find(None, &head).unwrap().target {
            RouteTarget::Pools(split) => split.pools()[0].0.name().to_string(),
            _ => unreachable!(),
        }
    };
    assert_eq!(with(None), "absent");
    assert_eq!(with(Some("1")), "one");
    assert_eq!(with(Some("2")), "present");
}

#[test]
fn path_prefixes_short_and_long_are_compared_whole() {
    let table = RouteTable::new(
        vec![
            route(None, "/v1/users/admin", RouteConditions::default(), "long"),
            route(None, "/v1/user", RouteConditions::default(), "eight"),
            route(None, "/v1", RouteConditions::default(), "short"),
            route(None, "/", RouteConditions::default(), "root"),
        ],
        PathPolicy::default(),
    );
    let to = |path: &str| found(&table, None, "GET", path).unwrap();
    assert_eq!(to("/v1/users/admin/keys"), "long");
    assert_eq!(
        to("/v1/users/adm"),
        "eight",
        "past the word, the rest differs"
    );
    assert_eq!(to("/v1/users/x"), "eight");
    assert_eq!(to("/v1/use"), "short", "shorter than the prefix");
    assert_eq!(to("/v2"), "root");
    assert_eq!(to("/"), "root");
}
