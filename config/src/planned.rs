//! HAProxy keywords percore knows of but does not run yet, with the piece of work that
//! brings each one, so that `percore -c` can say precisely why a config is refused.

/// The work item that will bring a keyword or option.
pub fn planned(keyword: &str) -> Option<&'static str> {
    let table: &[(&[&str], &str)] = &[
        (&["source"], "server selection, issue #4"),
        (
            &[
                "stick-table",
                "stick",
                "table",
                "peer",
                "localpeer",
                "sc0",
                "track-sc0",
            ],
            "planned: stick tables and peers",
        ),
        (
            &[
                "ssl",
                "crt",
                "ca-file",
                "verify",
                "sni",
                "alpn",
                "ssl-min-ver",
                "ssl-max-ver",
                "force-tlsv12",
                "force-tlsv13",
                "ssl-default-bind-options",
                "ssl-default-bind-ciphers",
                "ssl-default-server-options",
                "ssl-default-server-ciphers",
                "crt-list",
                "ciphers",
                "ciphersuites",
                "tune.ssl.default-dh-param",
            ],
            "planned: TLS",
        ),
        (
            &[
                "resolvers",
                "resolve-prefer",
                "init-addr",
                "server-template",
                "resolve-opts",
            ],
            "planned: DNS resolvers",
        ),
        (
            &[
                "option logasap",
                "stats",
                "user",
                "group",
                "description",
                "node",
                "master-worker",
                "expose-fd",
                "email-alert",
            ],
            "planned: logs, stats and the runtime socket",
        ),
        (
            &["compression", "cache", "filter", "http-send-name-header"],
            "planned: compression and cache",
        ),
        (
            &["http-error", "option http-restrict-req-hdr-names"],
            NOT_PLANNED,
        ),
    ];
    table
        .iter()
        .find(|(words, _)| words.contains(&keyword))
        .map(|(_, what)| *what)
}

/// The work item that will bring a sample fetch percore does not run yet.
pub fn planned_fetch(name: &str) -> Option<&'static str> {
    let table: &[(&str, &str)] = &[
        ("sc", "planned: stick tables and peers"),
        ("src_", "planned: stick tables and peers"),
        ("table_", "planned: stick tables and peers"),
        ("ssl_", "planned: TLS"),
        ("req.ssl_", "planned: TLS"),
        ("req_ssl_", "planned: TLS"),
        ("capture.", NOT_PLANNED),
        ("res.", NOT_PLANNED),
        ("req.", NOT_PLANNED),
        ("fc_", NOT_PLANNED),
        ("bc_", NOT_PLANNED),
        ("http_", NOT_PLANNED),
    ];
    table
        .iter()
        .find(|(prefix, _)| name.starts_with(prefix))
        .map(|(_, what)| *what)
}

/// What a refusal says of a known HAProxy feature no piece of work brings yet.
pub const NOT_PLANNED: &str = "not planned yet: tell us if you need it";

/// The work item that will bring a rule action percore knows of but does not run.
pub fn planned_action(name: &str) -> &'static str {
    match name {
        "cache-use" | "cache-store" => "planned: compression and cache",
        "do-resolve" => "planned: DNS resolvers",
        "set-map" | "del-map" | "add-acl" | "del-acl" => {
            "planned: logs, stats and the runtime socket"
        }
        "wait-for-handshake" => "planned: TLS",
        _ => NOT_PLANNED,
    }
}

/// The error text for a keyword that is planned or unknown, naming the section kind.
pub fn unsupported(keyword: &str, section: &str) -> String {
    match planned(keyword) {
        Some(work) => {
            format!("'{keyword}' in '{section}' section is not supported by percore yet ({work})")
        }
        None => format!("unknown keyword '{keyword}' in '{section}' section"),
    }
}
