//! The `clients` argument of `new Redlock(clients)`: a non-empty list whose entries may be
//! `redis://` URLs, option objects (`host`, `port`, `username`, `password`, `db`,
//! `keyPrefix`), or existing ioredis / node-redis client objects, whose connection settings
//! are read so that the engine opens its own connection to the same place.

use napi::bindgen_prelude::{JsObjectValue, JsValue, Object, Unknown};
use napi::{Result, ValueType};
use redlock_core::{NodeConfig, NodeConfigError};

use crate::args::{field, given, integer, invalid_type, invalid_value, object, string};

/// Reads the client list into node configurations; refuses two entries that reach the same
/// server and database, which would count one server's vote twice.
pub fn nodes(value: &Unknown) -> Result<Vec<NodeConfig>> {
    if value.get_type()? != ValueType::Object || !value.is_array()? {
        return Err(invalid_type(
            "clients",
            "an array of Redis URLs, option objects or clients",
            value,
        ));
    }
    // SAFETY: checked to be an array just above.
    let list = unsafe { value.cast::<Object>() }?;
    let len = list.get_array_length()?;
    if len == 0 {
        return Err(invalid_value(
            "clients",
            "it must name at least one Redis server",
        ));
    }
    let mut nodes: Vec<NodeConfig> = Vec::with_capacity(len as usize);
    for i in 0..len {
        let name = format!("clients[{i}]");
        let node = entry(&list.get_element::<Unknown>(i)?, &name)?;
        if let Some(j) = nodes.iter().position(|n| n.same_database(&node)) {
            return Err(invalid_value(
                &name,
                &format!(
                    "it reaches the same server and database as clients[{j}] ({}); each member of the quorum must be a distinct server",
                    node.label()
                ),
            ));
        }
        nodes.push(node);
    }
    Ok(nodes)
}

fn entry(value: &Unknown, name: &str) -> Result<NodeConfig> {
    if value.get_type()? == ValueType::String {
        return from_url(&string(value, name)?, name);
    }
    let entry = object(value, name)?;
    if given(Some(entry.get_named_property::<Unknown>("isCluster")?)).is_some_and(|v| {
        v.get_type().ok() == Some(ValueType::Boolean)
            && unsafe { v.cast::<bool>() }.unwrap_or(false)
    }) {
        return Err(invalid_value(
            name,
            "a Redis Cluster client is not supported yet",
        ));
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
            Some(options) => from_options(
                &object(&options, &format!("{name}.options"))?,
                &format!("{name}.options"),
            ),
            None => Err(invalid_value(
                name,
                "this client object has no readable connection options",
            )),
        };
    }
    from_options(&entry, name)
}

fn from_url(url: &str, name: &str) -> Result<NodeConfig> {
    NodeConfig::from_url(url).map_err(|e| match e {
        NodeConfigError::BadUrl(why) => invalid_value(name, why),
        NodeConfigError::TlsUnsupported => {
            invalid_value(name, "TLS (rediss://) is not supported yet")
        }
    })
}

fn from_options(options: &Object, name: &str) -> Result<NodeConfig> {
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
                return Err(invalid_value(
                    &format!("{name}.host"),
                    "it must not be empty",
                ));
            }
        }
        if let Some(port) = field(place, "port")? {
            node.port = integer(&port, &format!("{name}.port"), 1.0, 65535.0)? as u16;
        }
        if field(place, "path")?.is_some() {
            return Err(invalid_value(
                name,
                "Unix socket paths are not supported yet",
            ));
        }
        if let Some(tls) = field(place, "tls")? {
            let off = tls.get_type()? == ValueType::Boolean && !unsafe { tls.cast::<bool>() }?;
            if !off {
                return Err(invalid_value(name, "TLS is not supported yet"));
            }
        }
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
            node.db = integer(&db, &format!("{name}.{key}"), 0.0, 1_000_000.0)?;
        }
    }
    if let Some(prefix) = field(options, "keyPrefix")? {
        node.key_prefix = string(&prefix, &format!("{name}.keyPrefix"))?;
    }
    Ok(node)
}
