//! The `clients` argument of `new Redlock(clients)`: a non-empty list whose entries may be
//! `redis://` or `rediss://` URLs, option objects (`host`, `port`, `username`, `password`,
//! `db`, `keyPrefix`, `tls`), or existing ioredis / node-redis client objects, whose
//! connection settings are read so that the engine opens its own connection to the same
//! place.
//!
//! TLS settings come as Node's `tls.connect` options: ioredis keeps them in `tls`, node-redis
//! in `socket` (with `socket.tls: true`). `ca`, `cert` and `key` may be PEM strings, Buffers
//! or arrays of them.

use napi::bindgen_prelude::{BufferSlice, JsObjectValue, JsValue, Object, Unknown};
use napi::ValueType;
use redlock_core::{AddressMap, NodeConfig, NodeConfigError, TlsConfig};

use crate::args::{
    boolean, field, integer, invalid_type, invalid_value, object, string, Checked, Refusal,
    Refused, MAX_DB,
};

/// Reads the client list into node configurations, with every plain member on database `db`
/// when it is given (the `db` setting). The engine checks what the list means
/// ([`redlock_core::Redlock::new`]: TLS, one server given twice).
pub fn nodes(value: &Unknown, db: Option<u32>) -> Checked<Vec<NodeConfig>> {
    if value.get_type()? != ValueType::Object || !value.is_array()? {
        return Err(invalid_type(
            "clients",
            "an array of Redis URLs, option objects or clients",
            value,
        )
        .into());
    }
    // SAFETY: checked to be an array just above.
    let list = unsafe { value.cast::<Object>() }?;
    let len = list.get_array_length()?;
    if len == 0 {
        return Err(invalid_value("clients", "it must name at least one Redis server").into());
    }
    let mut nodes: Vec<NodeConfig> = Vec::with_capacity(len as usize);
    for i in 0..len {
        let name = format!("clients[{i}]");
        let mut node = entry(&list.get_element::<Unknown>(i)?, &name)?;
        if let (Some(db), false) = (db, node.is_cluster()) {
            node.db = i64::from(db);
        }
        nodes.push(node);
    }
    Ok(nodes)
}

fn entry(value: &Unknown, name: &str) -> Checked<NodeConfig> {
    if value.get_type()? == ValueType::String {
        return from_url(&string(value, name)?, name);
    }
    if value.get_type()? == ValueType::Object && value.is_array()? {
        // A list of URLs (or node objects): the startup nodes of one cluster.
        return cluster(value, name, None);
    }
    let entry = object(value, name)?;
    if let Some(member) = cluster_entry(&entry, name)? {
        return Ok(member);
    }
    // A client object (ioredis, node-redis) keeps its connection settings in `options`.
    let is_client = ["sendCommand", "eval"].iter().any(|m| {
        entry
            .get_named_property::<Unknown>(m)
            .and_then(|v| v.get_type())
            .map(|t| t == ValueType::Function)
            .unwrap_or(false)
    });
    if is_client {
        return match field(&entry, "options")? {
            Some(options) => {
                let mut node = from_options(
                    &object(&options, &format!("{name}.options"))?,
                    &format!("{name}.options"),
                )?;
                // An ioredis client that ran SELECT keeps the database it is on here.
                if let Some(db) = selected_db(&entry)? {
                    node.db = db;
                }
                Ok(node)
            }
            None => Err(invalid_value(
                name,
                "this client object has no readable connection options",
            )
            .into()),
        };
    }
    from_options(&entry, name)
}

/// The database an ioredis client has selected since it connected (`condition.select`).
fn selected_db(client: &Object) -> Checked<Option<i64>> {
    let Some(condition) = field(client, "condition")? else {
        return Ok(None);
    };
    if condition.get_type()? != ValueType::Object {
        return Ok(None);
    }
    // SAFETY: checked to be an object just above.
    let condition = unsafe { condition.cast::<Object>() }?;
    match field(&condition, "select")? {
        Some(db) if db.get_type()? == ValueType::Number => {
            // SAFETY: checked to be a number just above.
            let db = unsafe { db.cast::<f64>() }?;
            Ok((db.fract() == 0.0 && (0.0..=MAX_DB).contains(&db)).then_some(db as i64))
        }
        _ => Ok(None),
    }
}

/// A Redis Cluster entry, read when `entry` is or describes one: an ioredis `Cluster`
/// (`isCluster`: its `startupNodes`, `options.redisOptions` and `options.keyPrefix`), a
/// node-redis cluster (`getSlotRandomNode`: the `rootNodes` and `defaults` it was created
/// with), node-redis cluster options (`rootNodes`, `defaults`), or options with
/// `cluster: true` (startup nodes in `nodes`, `startupNodes`, or the entry's own `host` and
/// `port`) or `cluster: { nodes }`.
fn cluster_entry(entry: &Object, name: &str) -> Checked<Option<NodeConfig>> {
    let at = |key: &str| format!("{name}.{key}");
    if let Some(flag) = field(entry, "isCluster")? {
        if flag.get_type()? == ValueType::Boolean && unsafe { flag.cast::<bool>() }? {
            let seeds = required(entry, "startupNodes", name)?;
            let options = match field(entry, "options")? {
                Some(o) => object(&o, &at("options"))?,
                None => return cluster(&seeds, &at("startupNodes"), None).map(Some),
            };
            let redis = match field(&options, "redisOptions")? {
                Some(r) => Some((
                    object(&r, &at("options.redisOptions"))?,
                    at("options.redisOptions"),
                )),
                None => None,
            };
            let mut member = cluster(
                &seeds,
                &at("startupNodes"),
                redis.as_ref().map(|(o, n)| (o, n.as_str())),
            )?;
            if let Some(prefix) = field(&options, "keyPrefix")? {
                member.key_prefix = string(&prefix, &at("options.keyPrefix"))?;
            }
            member.nat_map = address_map(&options, &at("options"))?;
            return Ok(Some(member));
        }
    }
    let method = entry.get_named_property::<Unknown>("getSlotRandomNode")?;
    if method.get_type()? == ValueType::Function {
        // node-redis keeps the options it was created with in `_options`.
        let Some(options) = field(entry, "_options")? else {
            return Err(invalid_value(
                name,
                "this node-redis cluster has no readable options (rootNodes)",
            )
            .into());
        };
        let options = object(&options, &at("_options"))?;
        return node_redis_cluster(&options, &at("_options")).map(Some);
    }
    if field(entry, "rootNodes")?.is_some() {
        return node_redis_cluster(entry, name).map(Some);
    }
    // `cluster: true` or `cluster: { nodes }`; ioredis clients have a `cluster` method.
    let Some(flag) = field(entry, "cluster")? else {
        return Ok(None);
    };
    match flag.get_type()? {
        ValueType::Boolean if unsafe { flag.cast::<bool>() }? => {}
        ValueType::Object => {
            let nested = object(&flag, &at("cluster"))?;
            let seeds = required(&nested, "nodes", &at("cluster"))?;
            let mut member = cluster(&seeds, &at("cluster.nodes"), Some((entry, name)))?;
            member.nat_map = address_map(&nested, &at("cluster"))?;
            if member.nat_map.is_empty() {
                member.nat_map = address_map(entry, name)?;
            }
            return Ok(Some(member));
        }
        _ => return Ok(None),
    }
    let mut member = match ["nodes", "startupNodes"]
        .into_iter()
        .find_map(|key| field(entry, key).transpose().map(|seeds| (key, seeds)))
    {
        Some((key, seeds)) => cluster(&seeds?, &at(key), Some((entry, name)))?,
        None => {
            // The entry's own host and port are the one startup node.
            let mut member = from_options(entry, name)?;
            member.cluster = vec![(member.host.clone(), member.port)];
            member
        }
    };
    member.nat_map = address_map(entry, name)?;
    Ok(Some(member))
}

/// node-redis `createCluster` options: `rootNodes`, with `defaults` for every node.
fn node_redis_cluster(options: &Object, name: &str) -> Checked<NodeConfig> {
    let seeds = required(options, "rootNodes", name)?;
    let defaults = match field(options, "defaults")? {
        Some(d) => Some(object(&d, &format!("{name}.defaults"))?),
        None => None,
    };
    let defaults_name = format!("{name}.defaults");
    let mut member = cluster(
        &seeds,
        &format!("{name}.rootNodes"),
        defaults.as_ref().map(|d| (d, defaults_name.as_str())),
    )?;
    member.nat_map = address_map(options, name)?;
    Ok(member)
}

/// Where to reach the nodes a cluster announces at other addresses: ioredis's `natMap` or
/// node-redis's `nodeAddressMap`, an object from `"host:port"` (as announced) to
/// `{ host, port }`. A function cannot run in the native engine and is refused.
fn address_map(options: &Object, name: &str) -> Checked<AddressMap> {
    let mut map = Vec::new();
    for key in ["natMap", "nodeAddressMap"] {
        let Some(value) = field(options, key)? else {
            continue;
        };
        let name = format!("{name}.{key}");
        if value.get_type()? == ValueType::Function {
            return Err(invalid_value(
                &name,
                "a function cannot run in the native engine; give an object of \"host:port\": { host, port }",
            ).into());
        }
        let entries = object(&value, &name)?;
        let keys = entries.get_property_names()?;
        for i in 0..keys.get_array_length()? {
            let announced = string(&keys.get_element::<Unknown>(i)?, &name)?;
            let at = format!("{name}[\"{announced}\"]");
            let parsed = announced
                .rsplit_once(':')
                .and_then(|(host, port)| Some((host.to_owned(), port.parse::<u16>().ok()?)))
                .filter(|(host, port)| !host.is_empty() && *port > 0)
                .ok_or_else(|| invalid_value(&at, "its key must be the announced host:port"))?;
            let target = object(&entries.get_named_property::<Unknown>(&announced)?, &at)?;
            let host = match field(&target, "host")? {
                Some(h) => string(&h, &format!("{at}.host"))?,
                None => parsed.0.clone(),
            };
            let port = match field(&target, "port")? {
                Some(p) => integer(&p, &format!("{at}.port"), 1.0, 65535.0)? as u16,
                None => parsed.1,
            };
            map.push((parsed, (host, port)));
        }
    }
    Ok(map)
}

fn required<'a>(entry: &Object<'a>, key: &str, name: &str) -> Checked<Unknown<'a>> {
    field(entry, key)?.ok_or_else(|| {
        let why = format!("a Redis Cluster entry needs its startup nodes in '{key}'");
        Refused::from(invalid_value(name, &why))
    })
}

/// One cluster member from its startup nodes `seeds` (URLs, `host:port` strings, ports, or
/// node option objects) and the `options` shared by all its nodes (user, password, TLS, key
/// prefix). What `options` does not say is taken from the first startup node that says it.
fn cluster(
    seeds: &Unknown,
    seeds_name: &str,
    options: Option<(&Object, &str)>,
) -> Checked<NodeConfig> {
    if seeds.get_type()? != ValueType::Object || !seeds.is_array()? {
        return Err(
            invalid_type(seeds_name, "an array of the cluster's startup nodes", seeds).into(),
        );
    }
    // SAFETY: checked to be an array just above.
    let list = unsafe { seeds.cast::<Object>() }?;
    let len = list.get_array_length()?;
    if len == 0 {
        return Err(invalid_value(
            seeds_name,
            "it must name at least one startup node of the cluster",
        )
        .into());
    }
    let mut nodes = Vec::with_capacity(len as usize);
    for i in 0..len {
        let name = format!("{seeds_name}[{i}]");
        nodes.push(seed(&list.get_element::<Unknown>(i)?, &name)?);
    }
    if nodes
        .iter()
        .any(|n| n.tls.is_some() != nodes[0].tls.is_some())
    {
        return Err(invalid_value(
            seeds_name,
            "the startup nodes of one cluster must all use TLS (rediss://) or none",
        )
        .into());
    }
    let mut member = match options {
        Some((options, name)) => from_options(options, name)?,
        None => NodeConfig::new("127.0.0.1", 6379),
    };
    let first = |pick: fn(&NodeConfig) -> Option<String>| nodes.iter().find_map(pick);
    if member.username.is_none() {
        member.username = first(|n| n.username.clone());
    }
    if member.password.is_none() {
        member.password = first(|n| n.password.clone());
    }
    if member.tls.is_none() {
        member.tls = nodes.iter().find_map(|n| n.tls.clone());
    }
    if member.db == 0 {
        member.db = nodes.iter().map(|n| n.db).find(|db| *db != 0).unwrap_or(0);
    }
    if member.key_prefix.is_empty() {
        member.key_prefix =
            first(|n| Some(n.key_prefix.clone()).filter(|p| !p.is_empty())).unwrap_or_default();
    }
    member.host = nodes[0].host.clone();
    member.port = nodes[0].port;
    member.cluster = nodes.iter().map(|n| (n.host.clone(), n.port)).collect();
    Ok(member)
}

/// One startup node: a URL, `host:port`, a port number, or an options object.
fn seed(value: &Unknown, name: &str) -> Checked<NodeConfig> {
    match value.get_type()? {
        ValueType::Number => {
            let port = integer(value, name, 1.0, 65535.0)? as u16;
            Ok(NodeConfig::new("127.0.0.1", port))
        }
        ValueType::String => {
            let text = string(value, name)?;
            if text.contains("://") {
                return from_url(&text, name);
            }
            let (host, port) = text.rsplit_once(':').unwrap_or((text.as_str(), "6379"));
            let port = port
                .parse::<u16>()
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| invalid_value(name, "it must be a URL or host:port"))?;
            if host.is_empty() {
                return Err(invalid_value(name, "it has no host").into());
            }
            Ok(NodeConfig::new(host, port))
        }
        _ => from_options(&object(value, name)?, name),
    }
}

fn from_url(url: &str, name: &str) -> Checked<NodeConfig> {
    NodeConfig::from_url(url).map_err(|e| refused(&e, name).into())
}

/// A configuration the engine refused, as the argument `name`.
pub fn refused(error: &NodeConfigError, name: &str) -> Refusal {
    invalid_value(name, &error.to_string())
}

fn from_options(options: &Object, name: &str) -> Checked<NodeConfig> {
    let mut node = match field(options, "url")? {
        Some(url) => from_url(
            &string(&url, &format!("{name}.url"))?,
            &format!("{name}.url"),
        )?,
        None => NodeConfig::new("127.0.0.1", 6379),
    };
    // node-redis keeps host, port and tls under `socket`.
    let socket = match field(options, "socket")? {
        Some(s) => Some(object(&s, &format!("{name}.socket"))?),
        None => None,
    };
    for place in [Some(options), socket.as_ref()].into_iter().flatten() {
        if let Some(host) = field(place, "host")? {
            node.host = string(&host, &format!("{name}.host"))?;
            if node.host.is_empty() {
                return Err(invalid_value(&format!("{name}.host"), "it must not be empty").into());
            }
        }
        if let Some(port) = field(place, "port")? {
            node.port = integer(&port, &format!("{name}.port"), 1.0, 65535.0)? as u16;
        }
        if field(place, "path")?.is_some() {
            return Err(invalid_value(name, "Unix socket paths are not supported yet").into());
        }
    }
    if let Some(tls) = field(options, "tls")? {
        // ioredis: `tls` is true or an object of `tls.connect` options.
        let name = format!("{name}.tls");
        node.tls = match tls.get_type()? {
            ValueType::Boolean if boolean(&tls, &name)? => Some(tls_options(None, &name)?),
            ValueType::Boolean => None,
            _ => Some(tls_options(Some(&object(&tls, &name)?), &name)?),
        };
    }
    if let Some(socket) = &socket {
        // node-redis: `socket.tls: true`, with the `tls.connect` options beside it.
        // A `rediss://` url asks for TLS without the flag.
        let on = match field(socket, "tls")? {
            Some(tls) => boolean(&tls, &format!("{name}.socket.tls"))?,
            None => node.tls.is_some(),
        };
        node.tls = match on {
            true => Some(tls_options(Some(socket), &format!("{name}.socket"))?),
            false => None,
        };
    }
    if let Some(user) = field(options, "username")? {
        node.username = Some(string(&user, &format!("{name}.username"))?).filter(|u| !u.is_empty());
    }
    if let Some(password) = field(options, "password")? {
        node.password =
            Some(string(&password, &format!("{name}.password"))?).filter(|p| !p.is_empty());
    }
    for key in ["db", "database"] {
        if let Some(db) = field(options, key)? {
            node.db = integer(&db, &format!("{name}.{key}"), 0.0, MAX_DB)?;
        }
    }
    if let Some(prefix) = field(options, "keyPrefix")? {
        node.key_prefix = string(&prefix, &format!("{name}.keyPrefix"))?;
    }
    Ok(node)
}

/// Node's `tls.connect` options, from `options` (or the defaults when there are none).
fn tls_options(options: Option<&Object>, name: &str) -> Checked<TlsConfig> {
    let mut tls = TlsConfig::default();
    let Some(options) = options else {
        return Ok(tls);
    };
    tls.ca = pem(field(options, "ca")?, &format!("{name}.ca"))?;
    tls.cert = pem(field(options, "cert")?, &format!("{name}.cert"))?;
    tls.key = pem(field(options, "key")?, &format!("{name}.key"))?;
    if let Some(servername) = field(options, "servername")? {
        tls.servername = Some(string(&servername, &format!("{name}.servername"))?);
    }
    if let Some(reject) = field(options, "rejectUnauthorized")? {
        tls.reject_unauthorized = boolean(&reject, &format!("{name}.rejectUnauthorized"))?;
    }
    for (key, why) in [
        ("pfx", "PFX/PKCS#12 bundles are not supported; give PEM cert and key"),
        (
            "passphrase",
            "encrypted private keys are not supported; give an unencrypted PEM key",
        ),
        (
            "checkServerIdentity",
            "a custom identity check cannot run in the native engine; use servername, or rejectUnauthorized: false",
        ),
    ] {
        if field(options, key)?.is_some() {
            return Err(invalid_value(&format!("{name}.{key}"), why).into());
        }
    }
    Ok(tls)
}

/// PEM text from a string, a Buffer, or an array of them (concatenated), as Node's TLS
/// options accept. Never echoed in an error.
fn pem(value: Option<Unknown>, name: &str) -> Checked<Option<Vec<u8>>> {
    let Some(value) = value else {
        return Ok(None);
    };
    let one = |value: &Unknown, name: &str| -> Checked<Vec<u8>> {
        if value.get_type()? == ValueType::String {
            return Ok(string(value, name)?.into_bytes());
        }
        if value.is_buffer()? || value.is_typedarray()? {
            // SAFETY: checked to be a Buffer or typed array just above.
            let bytes = unsafe { value.cast::<BufferSlice>() }?;
            return Ok(bytes.to_vec());
        }
        Err(invalid_type(name, "a PEM string, a Buffer, or an array of them", value).into())
    };
    if value.get_type()? == ValueType::Object && value.is_array()? {
        // SAFETY: checked to be an array just above.
        let list = unsafe { value.cast::<Object>() }?;
        let mut all = Vec::new();
        for i in 0..list.get_array_length()? {
            all.extend(one(
                &list.get_element::<Unknown>(i)?,
                &format!("{name}[{i}]"),
            )?);
            all.push(b'\n');
        }
        return Ok(Some(all));
    }
    one(&value, name).map(Some)
}
