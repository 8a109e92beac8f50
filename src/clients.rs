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
use napi::{Result, ValueType};
use redlock_core::{NodeConfig, NodeConfigError, TlsConfig};

use crate::args::{boolean, field, integer, invalid_type, invalid_value, object, string};

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
        node.check().map_err(|e| refused(e, &name))?;
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
    if is_cluster(&entry)? {
        return Err(invalid_value(
            name,
            "a Redis Cluster as a quorum member is not supported yet; list independent Redis masters instead",
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

/// Whether `entry` is, or describes, a Redis Cluster: an ioredis `Cluster` (`isCluster`), a
/// node-redis cluster (`getSlotRandomNode`), or options naming cluster nodes.
fn is_cluster(entry: &Object) -> Result<bool> {
    if let Some(flag) = field(entry, "isCluster")? {
        if flag.get_type()? == ValueType::Boolean && unsafe { flag.cast::<bool>() }? {
            return Ok(true);
        }
    }
    let method = entry.get_named_property::<Unknown>("getSlotRandomNode")?;
    if method.get_type()? == ValueType::Function {
        return Ok(true);
    }
    if field(entry, "rootNodes")?.is_some() {
        return Ok(true);
    }
    // `cluster: true` or `cluster: { … }`; ioredis clients have a `cluster` method.
    Ok(match field(entry, "cluster")? {
        Some(v) => match v.get_type()? {
            ValueType::Boolean => unsafe { v.cast::<bool>() }?,
            ValueType::Object => true,
            _ => false,
        },
        None => false,
    })
}

fn from_url(url: &str, name: &str) -> Result<NodeConfig> {
    NodeConfig::from_url(url).map_err(|e| refused(e, name))
}

fn refused(error: NodeConfigError, name: &str) -> napi::Error {
    match error {
        NodeConfigError::BadUrl(why) | NodeConfigError::BadTls(why) => invalid_value(name, why),
    }
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
            node.db = integer(&db, &format!("{name}.{key}"), 0.0, 1_000_000.0)?;
        }
    }
    if let Some(prefix) = field(options, "keyPrefix")? {
        node.key_prefix = string(&prefix, &format!("{name}.keyPrefix"))?;
    }
    Ok(node)
}

/// Node's `tls.connect` options, from `options` (or the defaults when there are none).
fn tls_options(options: Option<&Object>, name: &str) -> Result<TlsConfig> {
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
            return Err(invalid_value(&format!("{name}.{key}"), why));
        }
    }
    Ok(tls)
}

/// PEM text from a string, a Buffer, or an array of them (concatenated), as Node's TLS
/// options accept. Never echoed in an error.
fn pem(value: Option<Unknown>, name: &str) -> Result<Option<Vec<u8>>> {
    let Some(value) = value else {
        return Ok(None);
    };
    let one = |value: &Unknown, name: &str| -> Result<Vec<u8>> {
        if value.get_type()? == ValueType::String {
            return Ok(string(value, name)?.into_bytes());
        }
        if value.is_buffer()? || value.is_typedarray()? {
            // SAFETY: checked to be a Buffer or typed array just above.
            let bytes = unsafe { value.cast::<BufferSlice>() }?;
            return Ok(bytes.to_vec());
        }
        Err(invalid_type(
            name,
            "a PEM string, a Buffer, or an array of them",
            value,
        ))
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
