use super::*;

fn parse(text: &str) -> Result<Config, ConfigErrors> {
    Config::parse(ConfigSource::new("/etc/bascule/test.toml", text))
}

const VALID: &str = r#"
[[listeners]]
name = "public"
address = "127.0.0.1:0"

  [[listeners.routes]]
  host = "*.Example.com"
  path-prefix = "/api"
  pool = "api"

  [[listeners.routes]]
  pool = "web"

[pools.api]
balancer = "builtin:round-robin"
connect-timeout = "250ms"
backends = [{ address = "127.0.0.1:9001", weight = 3, metadata = { zone = "a" } }]

[pools.web]
balancer = "plugins/pick.wasm"
on-plugin-failure = "fail-closed"
balancer-options = { seed = 7 }

[sandbox]
call-timeout = "5ms"
wall-clock-limit = "2s"
memory-limit-mib = 16
"#;

#[test]
fn valid_config_becomes_domain_types() {
    let config = parse(VALID).unwrap();
    let listener = &config.listeners[0];
    assert_eq!(listener.address, "127.0.0.1:0".parse().unwrap());
    assert_eq!(
        listener.routes[0].host,
        Some(HostPattern::Wildcard(".example.com".into()))
    );
    assert_eq!(listener.routes[1].path_prefix, "/");
    let api = config.pool("api").unwrap();
    assert_eq!(api.backends[0].weight, 3);
    assert_eq!(api.backends[0].id, "127.0.0.1:9001");
    assert_eq!(
        api.backends[0].metadata,
        [("zone".to_owned(), "a".to_owned())]
    );
    assert_eq!(api.connect_timeout, Duration::from_millis(250));
    assert_eq!(api.on_plugin_failure, PluginFailurePolicy::RoundRobin);
    let web = config.pool("web").unwrap();
    assert_eq!(
        web.balancer,
        BalancerRef::Plugin(PluginRef::File("/etc/bascule/plugins/pick.wasm".into()))
    );
    assert_eq!(web.balancer_options, r#"{"seed":7}"#);
    assert_eq!(web.on_plugin_failure, PluginFailurePolicy::FailClosed);
    assert_eq!(config.sandbox.call_timeout, Duration::from_millis(5));
    assert_eq!(config.sandbox.wall_clock_limit, Duration::from_secs(2));
    assert_eq!(config.sandbox.memory_limit_bytes, 16 << 20);
}

#[test]
fn unknown_key_names_file_line_and_field() {
    let text = VALID.replace("path-prefix = \"/api\"", "path-prefx = \"/api\"");
    let errors = parse(&text).unwrap_err();
    let error = &errors.0[0];
    assert_eq!(error.file, PathBuf::from("/etc/bascule/test.toml"));
    assert_eq!(error.line, 8, "{error}");
    assert!(error.field.starts_with("listeners[0].routes[0]"), "{error}");
    assert!(error.message.contains("path-prefx"), "{error}");
}

#[test]
fn every_validation_error_is_reported_at_once() {
    let text = VALID
        .replace("pool = \"web\"", "pool = \"nope\"")
        .replace("weight = 3", "weight = 0")
        .replace("\"5ms\"", "\"5 parsecs\"");
    let errors = parse(&text).unwrap_err();
    let fields: Vec<&str> = errors.0.iter().map(|e| e.field.as_str()).collect();
    assert_eq!(
        fields,
        [
            "pools.api.backends[0].weight",
            "listeners[0].routes[1].pool",
            "sandbox.call-timeout"
        ],
        "{errors}"
    );
    let pool_error = &errors.0[1];
    assert_eq!(pool_error.line, 12);
    assert!(
        pool_error.message.contains("no pool named `nope`"),
        "{pool_error}"
    );
}

#[test]
fn syntax_error_has_a_line() {
    let errors = parse("[[listeners]\nname = 1").unwrap_err();
    assert_eq!(errors.0[0].line, 1, "{errors}");
}

#[test]
fn rejects_bad_addresses_and_plugins() {
    let text = VALID
        .replace("127.0.0.1:9001", "nowhere")
        .replace("plugins/pick.wasm", "pick.so")
        .replace("address = \"127.0.0.1:0\"", "address = \"localhost:80\"");
    let errors = parse(&text).unwrap_err();
    let fields: Vec<&str> = errors.0.iter().map(|e| e.field.as_str()).collect();
    assert_eq!(
        fields,
        [
            "pools.api.backends[0].address",
            "pools.web.balancer",
            "listeners[0].address"
        ],
        "{errors}"
    );
}

#[test]
fn host_patterns_match_as_documented() {
    let wildcard = HostPattern::Wildcard(".example.com".into());
    assert!(wildcard.matches("a.example.com"));
    assert!(!wildcard.matches("example.com"));
    assert!(!wildcard.matches("aexample.com"));
    assert!(HostPattern::Exact("example.com".into()).matches("example.com"));
}

#[test]
fn slow_start_is_a_bounded_duration() {
    let ok = VALID.replace("[pools.web]", "[pools.web]\nslow-start = \"30s\"");
    let config = parse(&ok).unwrap();
    let web = config.pools.iter().find(|p| p.name == "web").unwrap();
    assert_eq!(web.slow_start, Some(Duration::from_secs(30)));
    assert!(config.pools.iter().any(|p| p.slow_start.is_none()));

    let errors =
        parse(&VALID.replace("[pools.web]", "[pools.web]\nslow-start = \"5ms\"")).unwrap_err();
    assert_eq!(errors.0[0].field, "pools.web.slow-start", "{errors}");
    assert!(errors.0[0].message.contains("out of range"), "{errors}");
}

const TCP: &str = r#"
[[listeners]]
name = "tls"
address = "127.0.0.1:0"
mode = "tcp"
idle-timeout = "90s"
zero-copy = false
accept-proxy-protocol-from = ["10.0.0.0/8", "::1", "192.168.1.77/24"]

  [[listeners.routes]]
  sni = "*.Example.com"
  pool = "tls"

  [[listeners.routes]]
  pool = "tls"

[pools.tls]
balancer = "builtin:round-robin"
proxy-protocol = "v2"
drain-timeout = "0s"
backends = [{ address = "127.0.0.1:9443" }]
"#;

#[test]
fn tcp_listeners_and_pools() {
    let config = parse(TCP).unwrap();
    let listener = &config.listeners[0];
    let ListenerMode::Tcp(tcp) = &listener.mode else {
        panic!("not tcp: {:?}", listener.mode);
    };
    assert_eq!(tcp.idle_timeout, Duration::from_secs(90));
    assert!(!tcp.zero_copy);
    let networks: Vec<String> = tcp
        .accept_proxy_protocol_from
        .iter()
        .map(ToString::to_string)
        .collect();
    // Host bits are dropped: `192.168.1.77/24` means the /24.
    assert_eq!(networks, ["10.0.0.0/8", "::1/128", "192.168.1.0/24"]);
    assert_eq!(
        listener.routes[0].sni,
        Some(HostPattern::Wildcard(".example.com".into()))
    );
    assert_eq!(listener.routes[1].sni, None);
    let pool = config.pool("tls").unwrap();
    assert_eq!(pool.proxy_protocol, Some(ProxyProtocolVersion::V2));
    assert_eq!(pool.drain_timeout, Duration::ZERO);
    assert_eq!(
        config.listeners_using("tls").count(),
        1,
        "the listener routes to the pool"
    );
    // HTTP listeners keep their defaults.
    let http = parse(VALID).unwrap();
    assert_eq!(
        http.listeners[0].mode,
        ListenerMode::Http(HttpListenerConfig::default())
    );
    assert_eq!(
        http.pool("api").unwrap().drain_timeout,
        DEFAULT_DRAIN_TIMEOUT
    );
}

#[test]
fn tcp_and_http_keys_do_not_mix() {
    let fields = |text: &str| -> Vec<String> {
        parse(text)
            .unwrap_err()
            .0
            .into_iter()
            .map(|e| e.field)
            .collect()
    };
    // `idle-timeout` is an HTTP key too (upgraded connections).
    assert_eq!(
        fields(&TCP.replace("mode = \"tcp\"\n", "")),
        [
            "listeners[0].zero-copy",
            "listeners[0].accept-proxy-protocol-from",
            "listeners[0].routes[0].sni",
        ]
    );
    assert_eq!(
        fields(&VALID.replace("[pools.api]", "[pools.api]\nproxy-protocol = \"v1\"")),
        ["pools.api.proxy-protocol"]
    );
    assert_eq!(
        fields(&TCP.replace("sni = \"*.Example.com\"", "host = \"example.com\"")),
        ["listeners[0].routes[0].host"]
    );
    assert_eq!(
        fields(
            &TCP.replace("\"::1\"", "\"::1/200\"")
                .replace("\"v2\"", "\"v3\"")
        ),
        [
            "pools.tls.proxy-protocol",
            "listeners[0].accept-proxy-protocol-from[1]"
        ]
    );
    assert_eq!(
        fields(&TCP.replace("mode = \"tcp\"", "mode = \"quic\"")),
        ["listeners[0].mode"]
    );
    // As a UDP listener, the TCP keys, SNI routes and a second route are
    // each refused.
    assert_eq!(
        fields(&TCP.replace("mode = \"tcp\"", "mode = \"udp\"")),
        [
            "listeners[0].zero-copy",
            "listeners[0].accept-proxy-protocol-from",
            "listeners[0].routes[0].sni",
            "listeners[0].routes",
        ]
    );
}

#[test]
fn resolver_takes_nameservers_and_a_refresh_interval() {
    let config = parse(VALID).unwrap();
    assert_eq!(config.resolver, ResolverConfig::default());

    let ok = format!(
        "{VALID}\n[resolver]\nnameservers = [\"127.0.0.1:5353\", \"[::1]:53\"]\nrefresh = \"5s\"\n"
    );
    let resolver = parse(&ok).unwrap().resolver;
    assert_eq!(
        resolver.nameservers,
        [
            "127.0.0.1:5353".parse::<SocketAddr>().unwrap(),
            "[::1]:53".parse().unwrap()
        ]
    );
    assert_eq!(resolver.refresh, Duration::from_secs(5));

    let bad = format!("{VALID}\n[resolver]\nnameservers = [\"dns.example\"]\nrefresh = \"1ms\"\n");
    let errors = parse(&bad).unwrap_err();
    let fields: Vec<&str> = errors.0.iter().map(|e| e.field.as_str()).collect();
    assert_eq!(
        fields,
        ["resolver.nameservers[0]", "resolver.refresh"],
        "{errors}"
    );
    assert!(errors.0[0].line > 0, "{errors}");
}

#[test]
fn backend_protocol_is_http1_h2_or_auto_with_tls() {
    let with = |line: &str| {
        VALID.replace(
            "connect-timeout = \"250ms\"",
            &format!("connect-timeout = \"250ms\"\n{line}"),
        )
    };
    let config = parse(VALID).unwrap();
    assert_eq!(
        config.pool("api").unwrap().protocol,
        UpstreamProtocol::Http1
    );
    let config = parse(&with("protocol = \"h2\"")).unwrap();
    assert_eq!(
        config.pool("api").unwrap().protocol,
        UpstreamProtocol::Http2
    );
    let config = parse(&with("protocol = \"auto\"\ntls = { verify = false }")).unwrap();
    assert_eq!(config.pool("api").unwrap().protocol, UpstreamProtocol::Auto);

    let errors = parse(&with("protocol = \"auto\"")).unwrap_err();
    let error = &errors.0[0];
    assert_eq!(error.field, "pools.api.protocol", "{error}");
    assert_eq!(error.line, 17, "{error}");
    assert!(error.message.contains("needs `tls`"), "{error}");
    let errors = parse(&with("protocol = \"h3\"")).unwrap_err();
    assert!(errors.0[0].message.contains("`h3`"), "{}", errors.0[0]);
}
