//! The Lua scripts of Redlock, each run atomically on one node over all of a lock's
//! keys, so that a multi-resource lock is all-or-nothing on every node.
//!
//! They keep node-redlock's meaning (keys are the resource names, the value is a plain
//! string, a script answers with the number of keys it acted on), so a node-redlock process
//! and a redlock-rs process exclude each other on the same key and a fleet can move over one
//! process at a time. Scripts are sent by SHA1 (EVALSHA), and by source (EVAL) when a node
//! answers NOSCRIPT ([`or_by_source`]); both kinds of member load them all when they connect
//! ([`load`]), so that the fallback is rare. The acquire script's common case, one key
//! without fencing, goes as a plain `SET … NX PX … GET` instead ([`run`]): a node runs it at a
//! fraction of the script's cost.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::LazyLock;

use crate::lock::Kind;

/// A Lua script and its SHA1, computed once.
pub struct Script {
    /// The Lua source.
    pub source: &'static str,
    /// The hex SHA1 of the source, as EVALSHA wants it.
    pub sha: String,
    /// A plain command that does the script's work in the common case, if there is one.
    plain: Option<Plain>,
}

/// A script's work as one plain command, where its arguments allow: cheaper for a node to run
/// than Lua, with the script sent after it only when the plain answer cannot tell.
#[derive(Clone, Copy)]
enum Plain {
    /// [`ACQUIRE`] of one key without fencing counters is `SET key value NX PX ttl GET`
    /// (Redis 7.0 and later): a nil answer means the key was set; another value names its
    /// holder. Our own value is left to the script, which renews its TTL.
    SetIfAbsent,
}

impl Script {
    fn new(source: &'static str) -> Self {
        Script {
            source,
            sha: redis::Script::new(source).get_hash().to_owned(),
            plain: None,
        }
    }

    fn with_plain(self, plain: Plain) -> Self {
        Script {
            plain: Some(plain),
            ..self
        }
    }

    /// The plain command for `keys` and `args`, where there is one.
    fn plain_command(&self, keys: &[String], args: &[String]) -> Option<redis::Cmd> {
        match (self.plain?, keys, args) {
            (Plain::SetIfAbsent, [key], [value, ttl]) => {
                // Sized up front, as `evalsha` is.
                let size = key.len() + value.len() + ttl.len() + 64;
                let mut set = redis::Cmd::with_capacity(7, size);
                set.arg("SET")
                    .arg(key)
                    .arg(value)
                    .arg("NX")
                    .arg("PX")
                    .arg(ttl)
                    .arg("GET");
                Some(set)
            }
            _ => None,
        }
    }
}

/// Whether a node takes the plain commands: set once it answered one with a syntax error
/// (a server older than Redis 7.0), from when on it only gets scripts.
#[derive(Default)]
pub struct PlainRefused(AtomicBool);

/// What a plain command's answer says.
enum PlainAnswer {
    /// The script's answer, as the script would have given it.
    Final(redis::Value),
    /// Only the script can tell (our own value is there, or the node answered an error).
    AskTheScript,
}

/// Reads the answer to [`Plain::SetIfAbsent`].
fn set_if_absent(answer: redis::Value, value: &str) -> PlainAnswer {
    match answer {
        redis::Value::Nil => PlainAnswer::Final(redis::Value::Int(1)),
        redis::Value::BulkString(held) if held != value.as_bytes() => {
            PlainAnswer::Final(redis::Value::BulkString(held))
        }
        _ => PlainAnswer::AskTheScript,
    }
}

/// Whether a server refused a command's syntax (as one older than Redis 7.0 refuses `SET …
/// NX … GET`).
fn is_syntax_error(answer: &redis::RedisResult<redis::Value>) -> bool {
    let syntax = |code: &str, detail: Option<&str>| {
        code == "ERR" && detail.is_some_and(|d| d.to_ascii_lowercase().contains("syntax"))
    };
    match answer {
        Ok(redis::Value::ServerError(e)) => syntax(e.code(), e.details()),
        Err(e) => e.code().is_some_and(|code| syntax(code, e.detail())),
        _ => false,
    }
}

/// Runs `script` over `keys` with `args` on `conn`: as its plain command where it has one
/// (unless the node refused plain commands before), otherwise, or when the plain answer
/// cannot tell, by SHA1 ([`evalsha`]), and by source after NOSCRIPT ([`or_by_source`]).
/// The script follows the plain command on the same connection, after its answer, so the
/// lock's commands to the node keep their order.
pub(crate) async fn run(
    conn: &mut impl Sender,
    script: &Script,
    keys: &[String],
    args: &[String],
    refused: &PlainRefused,
) -> redis::RedisResult<redis::Value> {
    let plain = match refused.0.load(Ordering::Relaxed) {
        false => script.plain_command(keys, args),
        true => None,
    };
    if let Some(plain) = plain {
        let answer = conn.send(plain).await;
        if is_syntax_error(&answer) {
            refused.0.store(true, Ordering::Relaxed);
        }
        match answer {
            Ok(answer) => {
                if let PlainAnswer::Final(answer) = set_if_absent(answer, &args[0]) {
                    return Ok(answer);
                }
            }
            // A server's error answer is left to the script; a broken connection is final.
            Err(e) if e.code().is_some() => {}
            Err(e) => return Err(e),
        }
    }
    let answer = conn.send(evalsha(script, keys, args)).await;
    or_by_source(answer, conn, script, keys, args).await
}

/// Sets the first `ARGV[3]` keys (all of them when `ARGV[3]` is absent) to `ARGV[1]` with a TTL
/// of `ARGV[2]` ms, unless one of them holds another value. A key that already holds our own
/// value counts as ours, so a retry never blocks on what an earlier attempt of the same lock
/// left behind. Answers the number of keys set, or the other holder's value when another
/// holder has any of them (so that a client can tell one holder from contenders that split
/// the nodes).
/// The keys after the first `ARGV[3]` are fencing counters ([`crate::fence`]): then it answers
/// `{keys set, highest counter}`.
pub static ACQUIRE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local locks = tonumber(ARGV[3]) or #KEYS
for i = 1, locks do
  local held = redis.call("GET", KEYS[i])
  if held and held ~= ARGV[1] then
    return held
  end
end
for i = 1, locks do
  redis.call("SET", KEYS[i], ARGV[1], "PX", ARGV[2])
end
if locks == #KEYS then
  return locks
end
local highest = 0
for i = locks + 1, #KEYS do
  local counter = tonumber(redis.call("GET", KEYS[i]) or "0") or 0
  if counter > highest then
    highest = counter
  end
end
return {locks, highest}
"#,
    )
    .with_plain(Plain::SetIfAbsent)
});

/// Raises every fencing counter in KEYS to `ARGV[2]` unless it is already higher: a counter
/// is never lowered. Answers the number of counters.
pub static FENCE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local token = tonumber(ARGV[2])
for _, key in ipairs(KEYS) do
  local counter = tonumber(redis.call("GET", key) or "0") or 0
  if counter < token then
    redis.call("SET", key, ARGV[2])
  end
end
return #KEYS
"#,
    )
});

/// Compare-and-expire: gives every key a new TTL of `ARGV[2]` ms if all of them still hold
/// `ARGV[1]`; changes nothing otherwise. Answers the number of keys extended, or 0.
pub static EXTEND: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
for _, key in ipairs(KEYS) do
  if redis.call("GET", key) ~= ARGV[1] then
    return 0
  end
end
for _, key in ipairs(KEYS) do
  redis.call("PEXPIRE", key, ARGV[2])
end
return #KEYS
"#,
    )
});

/// Compare-and-delete: deletes each key that still holds `ARGV[1]`. Answers how many it
/// deleted, so that a caller can tell a node that still held the lock from one that did not.
/// With a channel prefix in `ARGV[2]`, it announces each deletion with the lock's value on
/// the key's channel ([`crate::notice::channel`]: prefix..key, or prefix.."{"..key.."}" for a
/// key without a "}", so that the channel hashes to the key's Redis Cluster slot), which
/// wakes the waiters of [`crate::notice`] other than the lock's own.
pub static RELEASE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local deleted = 0
for _, key in ipairs(KEYS) do
  if redis.call("GET", key) == ARGV[1] then
    redis.call("DEL", key)
    if ARGV[2] and ARGV[2] ~= "" then
      local channel = ARGV[2] .. "{" .. key .. "}"
      if string.find(key, "}", 1, true) then
        channel = ARGV[2] .. key
      end
      redis.call("PUBLISH", channel, ARGV[1])
    end
    deleted = deleted + 1
  end
end
return deleted
"#,
    )
});

/// Takes `ARGV[4]` permits of a semaphore whose `ARGV[3]` slots are the first keys
/// ([`crate::semaphore`]): in the order that starts at slot `ARGV[5]` (0-based) and wraps
/// around, the first slots that are free or hold our value `ARGV[1]` are set to it with a TTL
/// of `ARGV[2]` ms, all of them or none. Answers the holder of the first slot found held when
/// too few are free, else `{permits, highest counter or nil, slot, …}` with the 1-based slots
/// taken. The keys after the slots are their fencing counters ([`crate::fence`]).
pub static PERMITS: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local slots, want, first = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local taken, holder = {}, false
for step = 0, slots - 1 do
  local i = (first + step) % slots + 1
  local held = redis.call("GET", KEYS[i])
  if held and held ~= ARGV[1] then
    holder = holder or held
  else
    taken[#taken + 1] = i
    if #taken == want then
      break
    end
  end
end
if #taken < want then
  return holder
end
local answer = {want, false}
for _, i in ipairs(taken) do
  redis.call("SET", KEYS[i], ARGV[1], "PX", ARGV[2])
  answer[#answer + 1] = i
end
if #KEYS > slots then
  local highest = 0
  for i = slots + 1, #KEYS do
    local counter = tonumber(redis.call("GET", KEYS[i]) or "0") or 0
    if counter > highest then
      highest = counter
    end
  end
  answer[2] = highest
end
return answer
"#,
    )
});

/// The node's clock in ms, for the read-write scripts: a reader's expiry is a score in the
/// readers' sorted set, measured by the node as `PX` is.
const NODE_MS: &str = r#"
local now = redis.call("TIME")
local ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
"#;

/// Announces the release of read-write lock keys `KEYS` on the writer key's channel, as
/// [`RELEASE`] announces a deletion, when `ARGV[2]` is a channel prefix.
const ANNOUNCE_WRITER_KEY: &str = r#"
local function announce()
  if ARGV[2] and ARGV[2] ~= "" then
    local channel = ARGV[2] .. "{" .. KEYS[1] .. "}"
    if string.find(KEYS[1], "}", 1, true) then
      channel = ARGV[2] .. KEYS[1]
    end
    redis.call("PUBLISH", channel, ARGV[1])
  end
end
"#;

/// Takes the write side of a read-write lock ([`crate::rwlock`]): `KEYS[1]` the writer key,
/// `KEYS[2]` the readers' sorted set (member: a reader's value, score: its expiry on this
/// node's clock), `KEYS[3]` the waiting writer's intent; fencing counters after them. Sets
/// the writer key to `ARGV[1]` with a TTL of `ARGV[2]` ms when no other writer and no reader
/// holds it. While readers hold it, it leaves its intent (for `ARGV[3]` ms, unless another
/// writer's intent is there) that keeps new readers out, and answers a reader's value; another
/// writer's value when one holds it. Granted, it answers 1, or `{1, highest counter}`.
pub static WRITE_ACQUIRE: LazyLock<Script> = LazyLock::new(|| {
    let source = format!(
        "{NODE_MS}{}",
        r#"
redis.call("ZREMRANGEBYSCORE", KEYS[2], "-inf", ms)
local writer = redis.call("GET", KEYS[1])
if writer and writer ~= ARGV[1] then
  return writer
end
local reader = redis.call("ZRANGE", KEYS[2], 0, 0)[1]
if reader then
  local intent = redis.call("GET", KEYS[3])
  if not intent or intent == ARGV[1] then
    redis.call("SET", KEYS[3], ARGV[1], "PX", ARGV[3])
  end
  return reader
end
redis.call("SET", KEYS[1], ARGV[1], "PX", ARGV[2])
if redis.call("GET", KEYS[3]) == ARGV[1] then
  redis.call("DEL", KEYS[3])
end
if #KEYS == 3 then
  return 1
end
local highest = 0
for i = 4, #KEYS do
  local counter = tonumber(redis.call("GET", KEYS[i]) or "0") or 0
  if counter > highest then
    highest = counter
  end
end
return {1, highest}
"#
    );
    Script::new(source.leak())
});

/// Takes the read side of a read-write lock (keys as [`WRITE_ACQUIRE`]'s): adds reader
/// `ARGV[1]` with an expiry `ARGV[2]` ms from now on this node's clock, unless a writer holds
/// the lock or a writer waits for it (its intent): then answers that writer's value.
pub static READ_ACQUIRE: LazyLock<Script> = LazyLock::new(|| {
    let source = format!(
        "{NODE_MS}{}",
        r#"
local writer = redis.call("GET", KEYS[1]) or redis.call("GET", KEYS[3])
if writer then
  return writer
end
local ttl = tonumber(ARGV[2])
redis.call("ZREMRANGEBYSCORE", KEYS[2], "-inf", ms)
redis.call("ZADD", KEYS[2], ms + ttl, ARGV[1])
if redis.call("PTTL", KEYS[2]) < ttl then
  redis.call("PEXPIRE", KEYS[2], ttl)
end
return 1
"#
    );
    Script::new(source.leak())
});

/// Extends reader `ARGV[1]` to expire `ARGV[2]` ms from now, if it still holds the read side
/// (its expiry has not passed on this node's clock). Answers 1, or 0.
pub static READ_EXTEND: LazyLock<Script> = LazyLock::new(|| {
    let source = format!(
        "{NODE_MS}{}",
        r#"
local expiry = tonumber(redis.call("ZSCORE", KEYS[2], ARGV[1]) or "0")
if expiry <= ms then
  return 0
end
local ttl = tonumber(ARGV[2])
redis.call("ZADD", KEYS[2], "XX", ms + ttl, ARGV[1])
if redis.call("PTTL", KEYS[2]) < ttl then
  redis.call("PEXPIRE", KEYS[2], ttl)
end
return 1
"#
    );
    Script::new(source.leak())
});

/// Removes reader `ARGV[1]`, announcing it (with a channel prefix in `ARGV[2]`) so that a
/// waiting writer tries again. Answers how many it removed (1 or 0).
pub static READ_RELEASE: LazyLock<Script> = LazyLock::new(|| {
    let source = format!(
        "{ANNOUNCE_WRITER_KEY}{}",
        r#"
local removed = redis.call("ZREM", KEYS[2], ARGV[1])
if removed == 1 then
  announce()
end
return removed
"#
    );
    Script::new(source.leak())
});

/// Compare-and-expire of the writer key: [`EXTEND`] for the write side.
pub static WRITE_EXTEND: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
if redis.call("GET", KEYS[1]) ~= ARGV[1] then
  return 0
end
redis.call("PEXPIRE", KEYS[1], ARGV[2])
return 1
"#,
    )
});

/// Compare-and-delete of the writer key, announced: [`RELEASE`] for the write side. With
/// `ARGV[3]` "end" (the acquisition is over: released, given up, stopped) it also deletes the
/// writer's own intent; an undo between two attempts leaves it, to keep new readers out.
pub static WRITE_RELEASE: LazyLock<Script> = LazyLock::new(|| {
    let source = format!(
        "{ANNOUNCE_WRITER_KEY}{}",
        r#"
local ended = ARGV[3] == "end" and redis.call("GET", KEYS[3]) == ARGV[1]
if ended then
  redis.call("DEL", KEYS[3])
end
if redis.call("GET", KEYS[1]) ~= ARGV[1] then
  if ended then
    announce()
  end
  return 0
end
redis.call("DEL", KEYS[1])
announce()
return 1
"#
    );
    Script::new(source.leak())
});

/// The scripts that acquire, extend and release a lock of `kind`.
pub(crate) fn of(kind: Kind) -> [&'static Script; 3] {
    match kind {
        Kind::Mutex => [&ACQUIRE, &EXTEND, &RELEASE],
        Kind::Read => [&READ_ACQUIRE, &READ_EXTEND, &READ_RELEASE],
        Kind::Write => [&WRITE_ACQUIRE, &WRITE_EXTEND, &WRITE_RELEASE],
    }
}

/// Every script, for loading them into a node's cache as soon as a connection opens.
pub fn all() -> [&'static Script; 12] {
    [
        &ACQUIRE,
        &EXTEND,
        &RELEASE,
        &FENCE,
        &INSPECT,
        &PERMITS,
        &READ_ACQUIRE,
        &READ_EXTEND,
        &READ_RELEASE,
        &WRITE_ACQUIRE,
        &WRITE_EXTEND,
        &WRITE_RELEASE,
    ]
}

/// Reads, changing nothing, what a node holds for one resource: `KEYS[1]` the lock key,
/// `KEYS[2]` its fencing counter. Answers `{value, pttl, counter}`: the value is nil when the
/// key is absent and 1 when it holds another type than a string (no lock of ours); the
/// counter nil when there is none.
pub static INSPECT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local kind = redis.call("TYPE", KEYS[1]).ok
local value = false
if kind == "string" then
  value = redis.call("GET", KEYS[1])
elseif kind ~= "none" then
  value = 1
end
local counter = false
if redis.call("TYPE", KEYS[2]).ok == "string" then
  counter = redis.call("GET", KEYS[2])
end
return { value, redis.call("PTTL", KEYS[1]), counter }
"#,
    )
});

/// SCRIPT LOAD of `script`, which puts it into a node's script cache.
pub fn load(script: &Script) -> redis::Cmd {
    let mut load = redis::cmd("SCRIPT");
    load.arg("LOAD").arg(script.source);
    load
}

/// A pipeline that loads every script into a node's script cache.
pub fn load_all() -> redis::Pipeline {
    let mut pipe = redis::pipe();
    for script in all() {
        pipe.add_command(load(script)).ignore();
    }
    pipe
}

/// A connection a script can be sent on.
pub(crate) trait Sender {
    fn send(
        &mut self,
        cmd: redis::Cmd,
    ) -> impl std::future::Future<Output = redis::RedisResult<redis::Value>> + std::marker::Send + '_;
}

impl Sender for redis::aio::MultiplexedConnection {
    async fn send(&mut self, cmd: redis::Cmd) -> redis::RedisResult<redis::Value> {
        // The connection's own method: no boxed future, unlike the generic trait's.
        self.send_packed_command(&cmd).await
    }
}

impl Sender for crate::batch::Batched {
    fn send(
        &mut self,
        cmd: redis::Cmd,
    ) -> impl std::future::Future<Output = redis::RedisResult<redis::Value>> + std::marker::Send + '_
    {
        crate::batch::Batched::send(self, cmd)
    }
}

impl Sender for redis::cluster_async::ClusterConnection {
    async fn send(&mut self, cmd: redis::Cmd) -> redis::RedisResult<redis::Value> {
        redis::aio::ConnectionLike::req_packed_command(self, &cmd).await
    }
}

/// The answer to `script` sent by its SHA1 ([`evalsha`]); or, when the node did not know it
/// (a restarted or flushed node answers NOSCRIPT), the answer to it sent again by its source
/// on `conn`. Awaited after the EVALSHA, so that its own state never adds to that request's.
pub(crate) async fn or_by_source(
    answer: redis::RedisResult<redis::Value>,
    conn: &mut impl Sender,
    script: &Script,
    keys: &[String],
    args: &[String],
) -> redis::RedisResult<redis::Value> {
    if !is_noscript(&answer) {
        return answer;
    }
    // Rare: boxed, so that its future does not enlarge every request's.
    Box::pin(eval(conn, script, keys, args)).await
}

/// Runs `script` by its source (EVAL), for a node that does not know its SHA1.
async fn eval(
    conn: &mut impl Sender,
    script: &Script,
    keys: &[String],
    args: &[String],
) -> redis::RedisResult<redis::Value> {
    let mut eval = redis::cmd("EVAL");
    eval.arg(script.source).arg(keys.len()).arg(keys).arg(args);
    conn.send(eval).await
}

/// EVALSHA of `script` over `keys` with `args`.
pub(crate) fn evalsha(script: &Script, keys: &[String], args: &[String]) -> redis::Cmd {
    // Sized up front: growing the buffer argument by argument costs more than the rest.
    let size = keys.iter().chain(args).map(|a| a.len() + 16).sum::<usize>() + 80;
    let mut cmd = redis::Cmd::with_capacity(3 + keys.len() + args.len(), size);
    cmd.arg("EVALSHA")
        .arg(&script.sha)
        .arg(keys.len())
        .arg(keys)
        .arg(args);
    cmd
}

/// Whether a node answered NOSCRIPT (it does not know the script's SHA1).
fn is_noscript(answer: &redis::RedisResult<redis::Value>) -> bool {
    let noscript = redis::ServerErrorKind::NoScript;
    match answer {
        Ok(redis::Value::ServerError(e)) => e.kind() == Some(noscript),
        Err(e) => e.kind() == redis::ErrorKind::Server(noscript),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server_error(line: &str) -> redis::RedisResult<redis::Value> {
        // As the server writes it on the wire.
        Ok(redis::parse_redis_value(format!("-{line}\r\n").as_bytes()).unwrap())
    }

    #[test]
    fn an_older_server_refusing_set_nx_get_is_told_from_other_errors() {
        // What Redis 6.2 and earlier answer to `SET k v NX PX 1 GET`.
        assert!(is_syntax_error(&server_error("ERR syntax error")));
        assert!(!is_syntax_error(&server_error(
            "WRONGTYPE Operation against a key holding the wrong kind of value"
        )));
        assert!(!is_syntax_error(&server_error(
            "NOAUTH Authentication required."
        )));
        assert!(!is_syntax_error(&Ok(redis::Value::Nil)));
    }

    #[test]
    fn only_one_key_without_counters_has_a_plain_command() {
        let (key, two) = (vec!["k".to_owned()], vec!["k".to_owned(), "j".to_owned()]);
        let args = ["v".to_owned(), "1000".to_owned()];
        let fenced = ["v".to_owned(), "1000".to_owned(), "1".to_owned()];
        assert!(ACQUIRE.plain_command(&key, &args).is_some());
        assert!(ACQUIRE.plain_command(&two, &args).is_none());
        assert!(ACQUIRE.plain_command(&key, &fenced).is_none());
        assert!(RELEASE.plain_command(&key, &args).is_none());
    }

    #[test]
    fn the_plain_answer_means_what_the_scripts_would() {
        let of = |answer| match set_if_absent(answer, "mine") {
            PlainAnswer::Final(value) => Some(value),
            PlainAnswer::AskTheScript => None,
        };
        assert_eq!(of(redis::Value::Nil), Some(redis::Value::Int(1)));
        let theirs = redis::Value::BulkString(b"theirs".to_vec());
        assert_eq!(of(theirs.clone()), Some(theirs));
        assert_eq!(of(redis::Value::BulkString(b"mine".to_vec())), None);
    }
}
