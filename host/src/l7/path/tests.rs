use super::*;

fn normal(path: &str) -> Result<String, PathError> {
    PathPolicy::default().normalize(path).map(Cow::into_owned)
}

#[test]
fn route_bypasses_all_become_the_plain_path() {
    for bypass in [
        "/%61dmin",
        "//admin",
        "/./admin",
        "/z/../admin",
        "/%2e%2e/admin",
        "/%2E/admin",
        "///z/./..//admin",
        "/admin",
    ] {
        assert_eq!(normal(bypass).as_deref(), Ok("/admin"), "{bypass}");
    }
}

#[test]
fn dot_segments_follow_rfc_3986() {
    let cases = [
        ("/a/b/c/./../../g", "/a/g"),
        ("/mid/content=5/../6", "/mid/6"),
        ("/a/b/..", "/a/"),
        ("/a/.", "/a/"),
        ("/..", "/"),
        ("/../../x", "/x"),
        ("/", "/"),
        ("/a/", "/a/"),
        ("/a..b/.c", "/a..b/.c"),
    ];
    for (path, expected) in cases {
        assert_eq!(normal(path).as_deref(), Ok(expected), "{path}");
    }
}

#[test]
fn escapes_other_than_unreserved_stay_encoded_in_uppercase() {
    assert_eq!(normal("/a%2fb").as_deref(), Ok("/a%2Fb"));
    assert_eq!(normal("/a%5cb").as_deref(), Ok("/a%5Cb"));
    assert_eq!(normal("/caf%c3%a9").as_deref(), Ok("/caf%C3%A9"));
    assert_eq!(normal("/%7euser").as_deref(), Ok("/~user"));
    assert_eq!(normal("/a%20b").as_deref(), Ok("/a%20b"));
    assert_eq!(normal("/a%3a").as_deref(), Ok("/a%3A"));
}

#[test]
fn bad_paths_are_refused() {
    assert_eq!(normal("/a\\b"), Err(PathError::Backslash));
    assert_eq!(normal("/a%2"), Err(PathError::BadEscape));
    assert_eq!(normal("/a%zz"), Err(PathError::BadEscape));
    assert_eq!(normal("/a%00b"), Err(PathError::EncodedControl));
    assert_eq!(normal("/a%0Ab"), Err(PathError::EncodedControl));
    assert_eq!(normal("*"), Err(PathError::NotAbsolute));
    let strict = PathPolicy {
        encoded_slashes: EncodedSlashes::Reject,
        ..PathPolicy::default()
    };
    assert_eq!(strict.normalize("/a%2Fb"), Err(PathError::EncodedSlash));
    assert_eq!(strict.normalize("/a%5cb"), Err(PathError::EncodedSlash));
}

#[test]
fn each_step_can_be_switched_off() {
    let none = PathPolicy {
        decode_unreserved: false,
        remove_dot_segments: false,
        merge_slashes: false,
        encoded_slashes: EncodedSlashes::Keep,
    };
    for path in ["/%61dmin", "//admin", "/./admin", "/z/../admin"] {
        assert_eq!(none.normalize(path).as_deref(), Ok(path), "{path}");
    }
    assert!(matches!(
        PathPolicy::default().normalize("/plain/path"),
        Ok(Cow::Borrowed(_))
    ));
}
