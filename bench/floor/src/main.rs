//! The floor of the redlock-rs benchmark: the least work a Redlock client can do, written
//! directly on the `redis` crate's `MultiplexedConnection`, with no engine around it.
//!
//! A lock is `SET key value NX PX ttl` sent to every node at once (a Lua script over all keys
//! when a lock has several resources, which is the least that makes it all-or-nothing), and a
//! release is a compare-and-delete script sent by EVALSHA to every node at once. Both are
//! decided as soon as a quorum is for or has become impossible; the stragglers' futures are
//! dropped, which is safe here because every request was already queued on its connection when
//! the round was first polled, so a node sees a lock's commands in the order they were issued.
//! There are no per-node timeouts, no lanes, no reconnects and no bookkeeping: whatever
//! redlock-rs spends beyond this is the price of its engine and of crossing into Node.
//!
//! With `--engine` the same workload runs on redlock-rs's engine (`redlock-core`) instead, still
//! in plain Rust: the difference to the floor is the engine's own cost, and the difference to
//! redlock-rs in Node is the cost of the binding, the front door and the runtime they run on.
//!
//! It speaks the same protocol as `bench/worker.js` (see the comment at its top): the workload is
//! given as arguments, one JSON line with the measurements comes out on stdout and, with
//! `--handshake`, the line `{"event":"warm"}` is printed after the warm-up and the measured
//! window starts when a line arrives on stdin (the runner kills a node in between). The lines
//! `{"event":"window","phase":"start"}` and `…"end"}` mark the window as it opens and closes (the
//! runner reads the redis-servers' CPU time then), and the result counts the context switches of
//! all of this process's threads inside the window.

use std::collections::HashMap;
use std::io::BufRead;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::stream::{FuturesUnordered, StreamExt};
use redis::aio::MultiplexedConnection;
use redis::{Cmd, Value};
use redlock_core::quorum::Tally;

/// Compare-and-delete over all keys: deletes each key that still holds ARGV[1].
const RELEASE: &str = r#"
local deleted = 0
for _, key in ipairs(KEYS) do
  if redis.call("GET", key) == ARGV[1] then
    redis.call("DEL", key)
    deleted = deleted + 1
  end
end
return deleted
"#;

/// Sets every key to ARGV[1] for ARGV[2] ms unless one of them holds another value.
const ACQUIRE_ALL: &str = r#"
for _, key in ipairs(KEYS) do
  local held = redis.call("GET", key)
  if held and held ~= ARGV[1] then
    return 0
  end
end
for _, key in ipairs(KEYS) do
  redis.call("SET", key, ARGV[1], "PX", ARGV[2])
end
return #KEYS
"#;

/// What to run, from the command line.
#[derive(Debug, Clone)]
struct Workload {
    urls: Vec<String>,
    runtime: String,
    workers: usize,
    loops: usize,
    resources: usize,
    /// Every loop locks the same resources instead of fresh ones per cycle.
    shared: bool,
    ttl_ms: u64,
    hold: Duration,
    retry_count: u32,
    retry_delay_ms: u64,
    retry_jitter_ms: u64,
    warmup: Duration,
    duration: Duration,
    handshake: bool,
    engine: bool,
    prefix: String,
}

impl Workload {
    fn from_args() -> Result<Self, String> {
        let mut w = Workload {
            urls: Vec::new(),
            runtime: "multi".into(),
            workers: 2,
            loops: 1,
            resources: 1,
            shared: false,
            ttl_ms: 10_000,
            hold: Duration::ZERO,
            retry_count: 10,
            retry_delay_ms: 200,
            retry_jitter_ms: 100,
            warmup: Duration::from_millis(300),
            duration: Duration::from_secs(2),
            handshake: false,
            engine: false,
            prefix: format!("bench:floor-rs:{}", std::process::id()),
        };
        let mut args = std::env::args().skip(1);
        while let Some(flag) = args.next() {
            if flag == "--shared" {
                w.shared = true;
                continue;
            }
            if flag == "--handshake" {
                w.handshake = true;
                continue;
            }
            if flag == "--engine" {
                w.engine = true;
                continue;
            }
            let value = args.next().ok_or(format!("{flag} needs a value"))?;
            let number = || {
                value
                    .parse::<u64>()
                    .map_err(|_| format!("{flag}: not a number: {value}"))
            };
            match flag.as_str() {
                "--urls" => w.urls = value.split(',').map(str::to_owned).collect(),
                "--runtime" => w.runtime = value.clone(),
                "--workers" => w.workers = number()? as usize,
                "--loops" => w.loops = number()? as usize,
                "--resources" => w.resources = number()? as usize,
                "--ttl-ms" => w.ttl_ms = number()?,
                "--hold-ms" => w.hold = Duration::from_millis(number()?),
                "--retry-count" => w.retry_count = number()? as u32,
                "--retry-delay-ms" => w.retry_delay_ms = number()?,
                "--retry-jitter-ms" => w.retry_jitter_ms = number()?,
                "--warmup-ms" => w.warmup = Duration::from_millis(number()?),
                "--duration-ms" => w.duration = Duration::from_millis(number()?),
                "--prefix" => w.prefix = value.clone(),
                _ => return Err(format!("unknown argument {flag}")),
            }
        }
        if w.urls.is_empty() {
            return Err("--urls is required".into());
        }
        Ok(w)
    }
}

/// The connections to the nodes and the commands' fixed parts.
struct Nodes {
    connections: Vec<MultiplexedConnection>,
    release_sha: String,
    acquire_all_sha: String,
}

impl Nodes {
    async fn connect(urls: &[String]) -> redis::RedisResult<Nodes> {
        let mut connections = Vec::new();
        for url in urls {
            let client = redis::Client::open(url.as_str())?;
            let mut connection = client.get_multiplexed_async_connection().await?;
            for script in [RELEASE, ACQUIRE_ALL] {
                redis::cmd("SCRIPT")
                    .arg("LOAD")
                    .arg(script)
                    .query_async::<String>(&mut connection)
                    .await?;
            }
            connections.push(connection);
        }
        Ok(Nodes {
            connections,
            release_sha: redis::Script::new(RELEASE).get_hash().to_owned(),
            acquire_all_sha: redis::Script::new(ACQUIRE_ALL).get_hash().to_owned(),
        })
    }

    /// Sends `cmd` to every node at once; true as soon as a quorum answered `granted`,
    /// false as soon as a quorum has become impossible.
    async fn round(&self, cmd: &Cmd, granted: fn(&Value) -> bool) -> bool {
        let mut answers: FuturesUnordered<_> = self
            .connections
            .iter()
            .map(|connection| {
                let mut connection = connection.clone();
                async move { connection.send_packed_command(cmd).await }
            })
            .collect();
        // The engine's quorum rule: the floor differs in its work, not in its decisions.
        let mut tally = Tally::new(self.connections.len());
        while let Some(answer) = answers.next().await {
            tally.count(matches!(answer, Ok(value) if granted(&value)));
            if let Some(decided) = tally.decision() {
                return decided;
            }
        }
        false
    }

    async fn acquire(&self, keys: &[String], value: &str, ttl_ms: u64) -> bool {
        if let [key] = keys {
            let mut cmd = redis::cmd("SET");
            cmd.arg(key).arg(value).arg("NX").arg("PX").arg(ttl_ms);
            self.round(&cmd, |v| matches!(v, Value::Okay)).await
        } else {
            let mut cmd = redis::cmd("EVALSHA");
            cmd.arg(&self.acquire_all_sha)
                .arg(keys.len())
                .arg(keys)
                .arg(value)
                .arg(ttl_ms);
            self.round(&cmd, |v| matches!(v, Value::Int(n) if *n > 0))
                .await
        }
    }

    /// Compare-and-delete everywhere; done when a quorum answered, whatever they answered.
    async fn release(&self, keys: &[String], value: &str) -> bool {
        let mut cmd = redis::cmd("EVALSHA");
        cmd.arg(&self.release_sha)
            .arg(keys.len())
            .arg(keys)
            .arg(value);
        self.round(&cmd, |v| matches!(v, Value::Int(_))).await
    }
}

/// Who takes the locks: the floor, or redlock-rs's engine.
enum Client {
    Floor(Nodes),
    Engine(Box<redlock_core::Redlock>, redlock_core::Settings),
}

/// A lock held by one or the other.
enum Held {
    Floor(Vec<String>, String),
    Engine(Arc<redlock_core::Lock>),
}

impl Client {
    async fn new(w: &Workload) -> Client {
        if !w.engine {
            let nodes = Nodes::connect(&w.urls).await;
            return Client::Floor(nodes.expect("every node answers at start"));
        }
        let nodes = w.urls.iter().map(|u| {
            redlock_core::NodeConfig::from_url(u).expect("the runner gives redis:// URLs")
        });
        let settings = redlock_core::Settings {
            retry_count: Some(w.retry_count),
            retry: redlock_core::RetryStrategy::Fixed {
                delay: Duration::from_millis(w.retry_delay_ms),
                jitter: Duration::from_millis(w.retry_jitter_ms),
            },
            ..redlock_core::Settings::default()
        };
        Client::Engine(
            Box::new(redlock_core::Redlock::new(nodes.collect()).expect("distinct servers")),
            settings,
        )
    }

    /// Acquires `keys`, retrying as the workload says; `None` when not granted.
    async fn lock(
        &self,
        keys: Vec<String>,
        w: &Workload,
        stopping: &AtomicBool,
        seed: &mut u64,
    ) -> Option<Held> {
        let ttl = Duration::from_millis(w.ttl_ms);
        let nodes = match self {
            Client::Engine(engine, settings) => {
                let lock = engine.acquire(keys, ttl, settings).await.ok()?;
                return Some(Held::Engine(lock));
            }
            Client::Floor(nodes) => nodes,
        };
        let value = random_value();
        for attempt in 0..=w.retry_count {
            if nodes.acquire(&keys, &value, w.ttl_ms).await {
                return Some(Held::Floor(keys, value));
            }
            if attempt == w.retry_count || stopping.load(Ordering::Relaxed) {
                break;
            }
            // Undo this attempt before the next, as Redlock does.
            nodes.release(&keys, &value).await;
            *seed ^= *seed << 13;
            *seed ^= *seed >> 7;
            *seed ^= *seed << 17;
            let jitter = w.retry_jitter_ms;
            let pause = (w.retry_delay_ms + *seed % (2 * jitter + 1)).saturating_sub(jitter);
            tokio::time::sleep(Duration::from_millis(pause)).await;
        }
        None
    }

    /// Releases `held`; whether a quorum answered.
    async fn release(&self, held: Held) -> bool {
        match (self, held) {
            (Client::Floor(nodes), Held::Floor(keys, value)) => nodes.release(&keys, &value).await,
            (Client::Engine(engine, settings), Held::Engine(lock)) => {
                engine.release(&lock, settings).await.is_ok()
            }
            _ => unreachable!("a lock goes back to the client that made it"),
        }
    }
}

/// What the loops record; shared by all of them.
#[derive(Default)]
struct Record {
    cycles: AtomicU64,
    acquire_failures: AtomicU64,
    release_failures: AtomicU64,
    /// Cycle latencies in µs, of cycles that started inside the measured window.
    latencies: Mutex<Vec<u64>>,
    grants: Mutex<Grants>,
}

/// The order of grants, for contention: who got the lock, and how long after the previous
/// holder asked to release it.
#[derive(Default)]
struct Grants {
    count: u64,
    owner_changes: u64,
    last_owner: Option<usize>,
    release_called: Option<Instant>,
    handoffs: Vec<u64>,
    /// The measured grants' holds in fact, in µs (a 1 ms sleep lasts 1 ms or more).
    hold_total: u64,
    holds: u64,
}

struct Shared {
    workload: Workload,
    client: Client,
    measuring: AtomicBool,
    stopping: AtomicBool,
    record: Record,
}

async fn run_loop(shared: Arc<Shared>, id: usize) {
    let w = &shared.workload;
    let mut seed =
        (id as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ u64::from(std::process::id());
    let mut cycle = 0u64;
    while !shared.stopping.load(Ordering::Relaxed) {
        cycle += 1;
        let keys: Vec<String> = (0..w.resources)
            .map(|r| {
                if w.shared {
                    format!("{}:shared:{r}", w.prefix)
                } else {
                    format!("{}:{id}:{cycle}:{r}", w.prefix)
                }
            })
            .collect();
        let started_inside = shared.measuring.load(Ordering::Relaxed);
        let start = Instant::now();
        let held = shared
            .client
            .lock(keys, w, &shared.stopping, &mut seed)
            .await;
        // Events count when they happen inside the measured window.
        let record = &shared.record;
        let inside = || shared.measuring.load(Ordering::Relaxed);
        let Some(held) = held else {
            if inside() {
                record.acquire_failures.fetch_add(1, Ordering::Relaxed);
            }
            continue;
        };
        let counted = inside();
        let granted = Instant::now();
        {
            let mut grants = record.grants.lock().unwrap();
            if counted {
                grants.count += 1;
                if grants.last_owner.is_some_and(|o| o != id) {
                    grants.owner_changes += 1;
                }
                if let Some(called) = grants.release_called {
                    grants.handoffs.push(called.elapsed().as_micros() as u64);
                }
            }
            grants.last_owner = Some(id);
        }
        if !w.hold.is_zero() {
            tokio::time::sleep(w.hold).await;
        }
        {
            let mut grants = record.grants.lock().unwrap();
            let called = Instant::now();
            grants.release_called = Some(called);
            if counted {
                grants.hold_total += (called - granted).as_micros() as u64;
                grants.holds += 1;
            }
        }
        let released = shared.client.release(held).await;
        if inside() {
            if !released {
                record.release_failures.fetch_add(1, Ordering::Relaxed);
            }
            record.cycles.fetch_add(1, Ordering::Relaxed);
            if started_inside {
                let micros = start.elapsed().as_micros() as u64;
                record.latencies.lock().unwrap().push(micros);
            }
        }
    }
}

/// 128 random bits from the OS, in hex, as redlock-rs makes its lock values.
fn random_value() -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).expect("the OS random source is available");
    let mut out = String::with_capacity(32);
    for b in bytes {
        out.push(HEX[usize::from(b >> 4)] as char);
        out.push(HEX[usize::from(b & 15)] as char);
    }
    out
}

/// User + system CPU time of this process, and its peak resident set size.
fn usage() -> (Duration, u64) {
    // SAFETY: getrusage only writes into the struct it is given.
    let ru = unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut ru);
        ru
    };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    (tv(ru.ru_utime) + tv(ru.ru_stime), ru.ru_maxrss as u64)
}

/// Voluntary and involuntary context switches so far of every thread of this process, by
/// thread id, from `/proc/self/task/<tid>/status` (empty where there is no `/proc`).
fn context_switches() -> HashMap<String, (u64, u64)> {
    let mut by_thread = HashMap::new();
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return by_thread;
    };
    for task in tasks.flatten() {
        // A thread that has just ended has no status any more.
        let Ok(status) = std::fs::read_to_string(task.path().join("status")) else {
            continue;
        };
        let field = |name: &str| {
            status
                .lines()
                .find_map(|line| line.strip_prefix(name))
                .and_then(|v| v.trim().parse::<u64>().ok())
        };
        if let (Some(voluntary), Some(involuntary)) = (
            field("voluntary_ctxt_switches:"),
            field("nonvoluntary_ctxt_switches:"),
        ) {
            let tid = task.file_name().to_string_lossy().into_owned();
            by_thread.insert(tid, (voluntary, involuntary));
        }
    }
    by_thread
}

/// The context switches between two readings, summed over threads (all, involuntary, threads
/// seen at the end): a thread started in between counts from zero, one that ended is lost.
fn switches_between(
    start: &HashMap<String, (u64, u64)>,
    end: &HashMap<String, (u64, u64)>,
) -> (u64, u64, usize) {
    let (mut voluntary, mut involuntary) = (0, 0);
    for (tid, (v, i)) in end {
        let (v0, i0) = start.get(tid).copied().unwrap_or((0, 0));
        voluntary += v.saturating_sub(v0);
        involuntary += i.saturating_sub(i0);
    }
    (voluntary + involuntary, involuntary, end.len())
}

/// The `p`-th percentile (nearest rank) of sorted values.
fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn main() {
    let workload = match Workload::from_args() {
        Ok(w) => w,
        Err(message) => {
            eprintln!("bench-floor: {message}");
            std::process::exit(2);
        }
    };
    let runtime = match workload.runtime.as_str() {
        "current" => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build(),
        _ => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(workload.workers)
            .enable_all()
            .build(),
    }
    .expect("a tokio runtime");
    let _context = runtime.enter();

    let client = runtime.block_on(Client::new(&workload));
    let shared = Arc::new(Shared {
        workload: workload.clone(),
        client,
        measuring: AtomicBool::new(false),
        stopping: AtomicBool::new(false),
        record: Record::default(),
    });
    let loops: Vec<_> = (0..workload.loops)
        .map(|id| runtime.spawn(run_loop(shared.clone(), id)))
        .collect();

    runtime.block_on(tokio::time::sleep(workload.warmup));
    if workload.handshake {
        println!("{{\"event\":\"warm\"}}");
        // The loops keep running while the runner kills a node.
        let (tx, rx) = tokio::sync::oneshot::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = std::io::stdin().lock().read_line(&mut line);
            let _ = tx.send(());
        });
        runtime.block_on(async {
            let _ = rx.await;
        });
    }
    println!("{{\"event\":\"window\",\"phase\":\"start\"}}");
    let switches_start = context_switches();
    let (cpu_start, _) = usage();
    let start = Instant::now();
    shared.measuring.store(true, Ordering::Relaxed);
    runtime.block_on(tokio::time::sleep(workload.duration));
    shared.measuring.store(false, Ordering::Relaxed);
    let (cpu_end, max_rss_kb) = usage();
    let elapsed = start.elapsed();
    let (switches, involuntary, threads) = switches_between(&switches_start, &context_switches());
    println!("{{\"event\":\"window\",\"phase\":\"end\"}}");
    let cycles = shared.record.cycles.load(Ordering::Relaxed);
    shared.stopping.store(true, Ordering::Relaxed);
    // Cycles still running after a grace period are stalled (a node that never answers).
    let grace = Instant::now();
    let unfinished = runtime.block_on(async {
        let mut unfinished = 0;
        for handle in loops {
            let left = Duration::from_secs(2).saturating_sub(grace.elapsed());
            if tokio::time::timeout(left, handle).await.is_err() {
                unfinished += 1;
            }
        }
        unfinished
    });

    let r = &shared.record;
    let mut latencies = std::mem::take(&mut *r.latencies.lock().unwrap());
    latencies.sort_unstable();
    let mut grants = r.grants.lock().unwrap();
    grants.handoffs.sort_unstable();
    let h = &grants.handoffs;
    println!(
        "{{\"event\":\"result\",\"cycles\":{cycles},\"elapsed_ms\":{:.3},\"cpu_ms\":{:.3},\"max_rss_kb\":{max_rss_kb},\
\"ctx_switches\":{switches},\"ctx_involuntary\":{involuntary},\"threads\":{threads},\
\"acquire_failures\":{},\"release_failures\":{},\"stalled\":{unfinished},\
\"lat_p50_us\":{},\"lat_p99_us\":{},\"lat_max_us\":{},\
\"grants\":{},\"owner_changes\":{},\"handoff_p50_us\":{},\"handoff_p99_us\":{},\"handoff_max_us\":{},\"hold_mean_us\":{}}}",
        elapsed.as_secs_f64() * 1000.0,
        (cpu_end - cpu_start).as_secs_f64() * 1000.0,
        r.acquire_failures.load(Ordering::Relaxed),
        r.release_failures.load(Ordering::Relaxed),
        percentile(&latencies, 50.0),
        percentile(&latencies, 99.0),
        latencies.last().copied().unwrap_or(0),
        grants.count,
        grants.owner_changes,
        percentile(h, 50.0),
        percentile(h, 99.0),
        h.last().copied().unwrap_or(0),
        if grants.holds > 0 {
            (grants.hold_total as f64 / grants.holds as f64).to_string()
        } else {
            "null".to_owned()
        },
    );
    // Stalled loops may hold connections forever: do not wait for the runtime to drop them.
    std::process::exit(0);
}
