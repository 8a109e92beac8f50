//! Node configuration from URLs, and how two configurations are told apart.

use redlock_core::{NodeConfig, NodeConfigError, Redlock, TlsConfig};

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
fn rediss_urls_ask_for_tls_with_the_system_cas() {
    let config = NodeConfig::from_url("rediss://user:pw@secure.example.com:6380/1").unwrap();
    assert_eq!(config.label(), "secure.example.com:6380/1");
    assert_eq!(config.username.as_deref(), Some("user"));
    assert_eq!(config.tls, Some(TlsConfig::default()));
    assert!(config.tls.as_ref().unwrap().reject_unauthorized);
    assert_eq!(config.check(), Ok(()));
    let insecure = NodeConfig::from_url("rediss://h:1#insecure").unwrap();
    assert!(!insecure.tls.unwrap().reject_unauthorized);
    assert_eq!(NodeConfig::from_url("redis://h:1").unwrap().tls, None);
}

#[test]
fn percent_encoded_users_and_passwords_are_decoded() {
    let config = NodeConfig::from_url("redis://app%40eu:p%3As%2Fw%40rd%25@h:1").unwrap();
    assert_eq!(config.username.as_deref(), Some("app@eu"));
    assert_eq!(config.password.as_deref(), Some("p:s/w@rd%"));
}

#[test]
fn unusable_tls_material_is_refused_naming_the_field_only() {
    let with = |tls: TlsConfig| NodeConfig {
        tls: Some(tls),
        ..NodeConfig::new("127.0.0.1", 6379)
    };
    let garbage = b"-----BEGIN PRIVATE KEY-----\nc2VjcmV0\n-----END PRIVATE KEY-----\n".to_vec();
    let cases = [
        (
            TlsConfig {
                ca: Some(b"not a certificate".to_vec()),
                ..TlsConfig::default()
            },
            "tls.ca",
        ),
        (
            TlsConfig {
                cert: Some(b"x".to_vec()),
                ..TlsConfig::default()
            },
            "together",
        ),
        (
            TlsConfig {
                cert: Some(b"x".to_vec()),
                key: Some(garbage.clone()),
                ..TlsConfig::default()
            },
            "tls.cert",
        ),
        (
            TlsConfig {
                servername: Some("not a name!".into()),
                ..TlsConfig::default()
            },
            "server name",
        ),
    ];
    for (tls, field) in cases {
        let shown = format!("{tls:?}");
        assert!(!shown.contains("c2VjcmV0"), "{shown}");
        match with(tls).check() {
            Err(NodeConfigError::BadTls(why)) => assert!(why.contains(field), "{why}"),
            other => panic!("{field}: {other:?}"),
        }
    }
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

#[test]
fn a_cluster_is_named_by_its_startup_nodes_and_overlaps_any_entry_that_shares_one() {
    let cluster = |seeds: &[(&str, u16)]| NodeConfig {
        cluster: seeds.iter().map(|(h, p)| (h.to_string(), *p)).collect(),
        password: Some("s3cret".into()),
        ..NodeConfig::new(seeds[0].0, seeds[0].1)
    };
    let a = cluster(&[("127.0.0.1", 7000), ("127.0.0.1", 7001)]);
    assert!(a.is_cluster());
    assert_eq!(a.label(), "cluster[127.0.0.1:7000,127.0.0.1:7001]");
    assert!(!format!("{a:?}").contains("s3cret"));
    // A plain entry on a startup node, or another cluster sharing one, would vote twice.
    assert!(a.same_database(&NodeConfig::new("localhost", 7001)));
    assert!(a.same_database(&cluster(&[("127.0.0.1", 7001)])));
    assert!(!a.same_database(&NodeConfig::new("127.0.0.1", 7002)));
    assert!(!a.same_database(&cluster(&[("127.0.0.1", 7100)])));
    assert_eq!(a.check(), Ok(()));
    // Only database 0, and no servername (each master is verified for its own address).
    let db = NodeConfig { db: 2, ..a.clone() };
    assert!(db.check().is_err());
    let named = NodeConfig {
        tls: Some(TlsConfig {
            servername: Some("redis.internal".into()),
            ..TlsConfig::default()
        }),
        ..a.clone()
    };
    assert!(matches!(named.check(), Err(NodeConfigError::BadTls(m)) if m.contains("servername")));
}

#[test]
fn a_client_refuses_one_server_given_twice_and_names_both_entries() {
    let a = NodeConfig::new("127.0.0.1", 7001);
    let b = NodeConfig::new("localhost", 7002);
    let again = NodeConfig::from_url("redis://localhost:7001/0").unwrap();
    let refused = match Redlock::new(vec![a, b, again]) {
        Ok(_) => panic!("the same server and database was accepted twice"),
        Err(refused) => refused,
    };
    assert_eq!(refused.node, 2);
    assert_eq!(
        refused.error,
        NodeConfigError::SameServer {
            first: 0,
            label: "localhost:7001/0".into()
        }
    );
    assert!(refused.error.to_string().contains("clients[0]"));
    let other_db = NodeConfig::from_url("redis://127.0.0.1:7001/1").unwrap();
    let distinct = vec![NodeConfig::new("127.0.0.1", 7001), other_db];
    assert!(
        Redlock::new(distinct).is_ok(),
        "another database is another member"
    );
}
