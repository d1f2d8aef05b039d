//! A route's conditions beyond host and path prefix, compiled: the exact
//! path, a path regex, methods, header and query parameter tests.

use http::request::Parts;
use http::{HeaderName, Method};
use regex::Regex;

use crate::config::{FieldCondition, RouteConditions, ValueTest};

/// What a request must also meet to take a route.
#[derive(Debug, Default)]
pub struct Conditions {
    path: Option<String>,
    path_regex: Option<Regex>,
    methods: Vec<Method>,
    headers: Vec<HeaderTest>,
    query: Vec<(String, Test)>,
}

#[derive(Debug)]
struct HeaderTest {
    name: HeaderName,
    /// The name's number in its route table (the first 64 distinct names
    /// tested), for [`AbsentHeaders`].
    slot: Option<u8>,
    test: Test,
}

/// The tested header names one request lacks, learned as a lookup goes:
/// routes that test the same header (a variant header on many routes)
/// cost one header-map lookup, not one each, when the request has none.
#[derive(Debug, Default)]
pub struct AbsentHeaders {
    known: u64,
    absent: u64,
}

#[derive(Debug)]
enum Test {
    Present,
    Absent,
    Exact(String),
    Regex(Regex),
}

// === impl Conditions ===

impl Conditions {
    /// The conditions of `config` (its patterns compiled when it loaded).
    pub fn new(config: &RouteConditions) -> Self {
        let field = |condition: &FieldCondition| match &condition.test {
            ValueTest::Present => Test::Present,
            ValueTest::Absent => Test::Absent,
            ValueTest::Exact(value) => Test::Exact(value.clone()),
            ValueTest::Regex(pattern) => Test::Regex(pattern.regex().clone()),
        };
        Conditions {
            path: config.path.clone(),
            path_regex: config.path_regex.as_ref().map(|p| p.regex().clone()),
            methods: config
                .methods
                .iter()
                .filter_map(|method| Method::from_bytes(method.as_bytes()).ok())
                .collect(),
            // Validation checked the names.
            headers: config
                .headers
                .iter()
                .filter_map(|c| {
                    Some(HeaderTest {
                        name: HeaderName::from_bytes(c.name.as_bytes()).ok()?,
                        slot: None,
                        test: field(c),
                    })
                })
                .collect(),
            query: config
                .query
                .iter()
                .map(|c| (c.name.clone(), field(c)))
                .collect(),
        }
    }

    /// The path regex, for `rewrite-path` with its groups.
    pub fn path_regex(&self) -> Option<&Regex> {
        self.path_regex.as_ref()
    }

    /// Numbers the header names this route tests, in `names` (the names
    /// numbered so far in its table), for [`AbsentHeaders`].
    pub fn number_headers(&mut self, names: &mut Vec<HeaderName>) {
        for header in &mut self.headers {
            let slot = match names.iter().position(|name| *name == header.name) {
                Some(slot) => slot,
                None => {
                    names.push(header.name.clone());
                    names.len() - 1
                }
            };
            header.slot = u8::try_from(slot).ok().filter(|slot| *slot < 64);
        }
    }

    /// Whether there is no condition at all.
    pub fn is_empty(&self) -> bool {
        self.path.is_none()
            && self.path_regex.is_none()
            && self.methods.is_empty()
            && self.headers.is_empty()
            && self.query.is_empty()
    }

    /// Whether `head` (its path already normalised) meets every condition.
    pub fn accept(&self, head: &Parts) -> bool {
        self.accept_with(head, head.uri.path(), None, &mut AbsentHeaders::default())
    }

    /// [`Conditions::accept`], with the path regex's verdict already known
    /// (`regex_matched`: the route table ran every route's regex at once),
    /// the headers earlier routes found missing (`absent`), and `path`,
    /// `head`'s path.
    pub fn accept_with(
        &self,
        head: &Parts,
        path: &str,
        regex_matched: Option<bool>,
        absent: &mut AbsentHeaders,
    ) -> bool {
        if self.path.as_deref().is_some_and(|exact| exact != path) {
            return false;
        }
        if let Some(regex) = &self.path_regex
            && !regex_matched.unwrap_or_else(|| regex.is_match(path))
        {
            return false;
        }
        if !self.methods.is_empty() && !self.methods.contains(&head.method) {
            return false;
        }
        let headers_hold = self.headers.iter().all(|HeaderTest { name, slot, test }| {
            if slot.is_some_and(|slot| absent.is_absent(slot)) {
                return matches!(test, Test::Absent);
            }
            let mut values = head.headers.get_all(name).iter().peekable();
            if let Some(slot) = *slot {
                absent.learn(slot, values.peek().is_none());
            }
            match test {
                Test::Present => values.peek().is_some(),
                Test::Absent => values.peek().is_none(),
                Test::Exact(expected) => {
                    values.any(|value| value.as_bytes() == expected.as_bytes())
                }
                Test::Regex(regex) => {
                    values.any(|value| value.to_str().is_ok_and(|text| regex.is_match(text)))
                }
            }
        });
        if !headers_hold {
            return false;
        }
        let query = head.uri.query().unwrap_or_default();
        self.query.iter().all(|(name, test)| {
            let mut values = query_values(query, name).peekable();
            match test {
                Test::Present => values.peek().is_some(),
                Test::Absent => values.peek().is_none(),
                Test::Exact(expected) => values.any(|value| value == expected),
                Test::Regex(regex) => values.any(|value| regex.is_match(value)),
            }
        })
    }
}

// === impl AbsentHeaders ===

impl AbsentHeaders {
    fn is_absent(&self, slot: u8) -> bool {
        let bit = 1u64 << slot;
        self.known & bit != 0 && self.absent & bit != 0
    }

    fn learn(&mut self, slot: u8, absent: bool) {
        let bit = 1u64 << slot;
        self.known |= bit;
        if absent {
            self.absent |= bit;
        }
    }
}

/// The raw values of parameter `name` in `query` (`a=1&b&a=2`: `1`, `2`
/// for `a`, and `` for `b`); not percent-decoded, as written.
fn query_values<'q>(query: &'q str, name: &'q str) -> impl Iterator<Item = &'q str> + 'q {
    query.split('&').filter_map(move |pair| {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        (key == name).then_some(value)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(method: &str, uri: &str, headers: &[(&str, &str)]) -> Parts {
        let mut request = http::Request::builder().method(method).uri(uri);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.body(()).unwrap().into_parts().0
    }

    fn conditions(config: RouteConditions) -> Conditions {
        Conditions::new(&config)
    }

    fn pattern(text: &str) -> crate::config::Pattern {
        crate::config::Pattern::new(text).unwrap()
    }

    #[test]
    fn every_given_condition_must_hold() {
        let api = conditions(RouteConditions {
            path_regex: Some(pattern("/users/[0-9]+")),
            methods: vec!["GET".into(), "HEAD".into()],
            headers: vec![
                FieldCondition {
                    name: "user-agent".into(),
                    test: ValueTest::Regex(pattern(".*Mobile.*")),
                },
                FieldCondition {
                    name: "x-debug".into(),
                    test: ValueTest::Absent,
                },
            ],
            query: vec![FieldCondition {
                name: "v".into(),
                test: ValueTest::Exact("2".into()),
            }],
            ..RouteConditions::default()
        });
        let mobile = [("user-agent", "Foo Mobile Safari")];
        assert!(api.accept(&head("GET", "/users/42?v=2", &mobile)));
        assert!(api.accept(&head("HEAD", "/users/42?a&v=2", &mobile)));
        // The regex is anchored: a longer path does not match.
        assert!(!api.accept(&head("GET", "/users/42/x?v=2", &mobile)));
        assert!(!api.accept(&head("POST", "/users/42?v=2", &mobile)));
        assert!(!api.accept(&head("GET", "/users/42?v=3", &mobile)));
        assert!(!api.accept(&head("GET", "/users/42", &mobile)));
        assert!(!api.accept(&head("GET", "/users/42?v=2", &[("user-agent", "Desktop")])));
        let debug = [("user-agent", "Mobile"), ("x-debug", "1")];
        assert!(!api.accept(&head("GET", "/users/42?v=2", &debug)));
    }

    #[test]
    fn exact_path_presence_and_exact_values() {
        let health = conditions(RouteConditions {
            path: Some("/healthz".into()),
            headers: vec![FieldCondition {
                name: "x-canary".into(),
                test: ValueTest::Exact("1".into()),
            }],
            query: vec![FieldCondition {
                name: "deep".into(),
                test: ValueTest::Present,
            }],
            ..RouteConditions::default()
        });
        assert!(health.accept(&head("GET", "/healthz?deep", &[("x-canary", "1")])));
        assert!(!health.accept(&head("GET", "/healthz/?deep", &[("x-canary", "1")])));
        assert!(!health.accept(&head("GET", "/healthz?deep", &[("x-canary", "0")])));
        assert!(!health.accept(&head("GET", "/healthz?deeper=1", &[("x-canary", "1")])));
        assert!(Conditions::default().accept(&head("DELETE", "/anything", &[])));
    }
}
