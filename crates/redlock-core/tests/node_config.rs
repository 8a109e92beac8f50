//! Node configuration from URLs, and how two configurations are told apart.

use redlock_core::{NodeConfig, NodeConfigError};

#[test]
fn a_url_gives_user_password_host_port_and_db() {
    let config = NodeConfig::from_url("redis://alice:s3cret@db.example.com:6380/2").unwrap();
    assert_eq!(config.host, "db.example.com");
    assert_eq!(config.port, 6380);
    assert_eq!(config.username.as_deref(), Some("alice"));
    assert_eq!(config.password.as_deref(), Some("s3cret"));
    assert_eq!(config.db, 2);
    assert_eq!(config.key_prefix, "");
}

#[test]
fn a_bare_url_takes_the_default_port_and_db() {
    let config = NodeConfig::from_url("redis://127.0.0.1").unwrap();
    assert_eq!(config, NodeConfig::new("127.0.0.1", 6379));
}

#[test]
fn a_password_without_a_user_is_kept() {
    let config = NodeConfig::from_url("redis://:pw@h:1/0").unwrap();
    assert_eq!(config.username, None);
    assert_eq!(config.password.as_deref(), Some("pw"));
}

#[test]
fn the_label_and_debug_output_never_show_the_password() {
    let config = NodeConfig::from_url("redis://alice:s3cret@db.example.com:6380/2").unwrap();
    assert_eq!(config.label(), "db.example.com:6380/2");
    assert!(!format!("{config:?}").contains("s3cret"));
}

#[test]
fn tls_urls_are_refused_as_unsupported() {
    assert_eq!(
        NodeConfig::from_url("rediss://user:pw@secure.example.com:6380"),
        Err(NodeConfigError::TlsUnsupported)
    );
}

#[test]
fn other_schemes_and_garbage_are_refused() {
    for url in [
        "http://x",
        "garbage",
        "",
        "redis://",
        "unix:///tmp/redis.sock",
    ] {
        assert!(
            matches!(NodeConfig::from_url(url), Err(NodeConfigError::BadUrl(_))),
            "{url:?} was accepted"
        );
    }
}

#[test]
fn localhost_and_127_0_0_1_on_the_same_port_and_db_are_the_same_database() {
    let loopback = NodeConfig::new("127.0.0.1", 6379);
    assert!(NodeConfig::new("localhost", 6379).same_database(&loopback));
    assert!(NodeConfig::new("LOCALHOST", 6379).same_database(&loopback));
    assert!(loopback.same_database(&NodeConfig::from_url("redis://localhost:6379/0").unwrap()));

    assert!(!NodeConfig::new("localhost", 6380).same_database(&loopback));
    let mut other_db = NodeConfig::new("localhost", 6379);
    other_db.db = 1;
    assert!(!other_db.same_database(&loopback));
    assert!(!NodeConfig::new("10.0.0.1", 6379).same_database(&loopback));
}
