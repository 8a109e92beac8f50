//! The napi binding of redlock-rs: the classes `Redlock` and `Lock` over the engine in
//! `redlock-core`. This crate checks arguments and converts values; no algorithm lives here.
//! Every promise resolves with an [`outcome::Outcome`]; a refused call throws a
//! [`outcome::Failure`]. The handwritten `index.js` turns either into an error of the
//! caller's realm, in one function.

mod args;
mod clients;
mod outcome;
mod runtime;
mod settings;

/// The addon allocates about 150-200 small blocks per lock cycle. With hundreds of operations
/// in flight, glibc's malloc spent about a sixth of the engine thread's time in its slow paths
/// (`malloc_consolidate`, `unlink_chunk`); mimalloc's per-thread free lists do not
/// (docs/BENCHMARKS.md). It serves the addon's Rust allocations only, not Node's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::sync::Arc;
use std::time::{Duration, Instant};

use napi::bindgen_prelude::{BigInt, Function, PromiseRaw, Unknown};
use napi::threadsafe_function::ThreadsafeFunctionCallMode;
use napi::{Env, Result};
use napi_derive::napi;

use args::Checked;
use outcome::{failure, Failure, Inspection, Outcome};
use redlock_core::stats::Op;
use settings::Settings;

/// Counts an operation that began at `started` in the engine's stats.
fn counted<T>(
    engine: &redlock_core::Redlock,
    op: Op,
    started: Instant,
    result: &std::result::Result<T, redlock_core::Error>,
) {
    let outcome = match result {
        Ok(_) => redlock_core::stats::OK,
        Err(e) => e.code(),
    };
    engine.stats().operation(op, started.elapsed(), outcome);
}

/// Runs an acquisition on the engine, counted in its stats, and answers its outcome (the
/// lock, or the failure over `keys` keys per node).
fn acquisition<'env, F>(
    env: &'env Env,
    engine: Arc<redlock_core::Redlock>,
    labels: Arc<[String]>,
    keys: usize,
    acquire: impl FnOnce(Arc<redlock_core::Redlock>) -> F + Send + 'static,
) -> Result<PromiseRaw<'env, Outcome>>
where
    F: std::future::Future<
            Output = std::result::Result<Arc<redlock_core::Lock>, redlock_core::Error>,
        > + Send,
{
    runtime::spawn(env, async move {
        let started = Instant::now();
        let acquired = acquire(engine.clone()).await;
        counted(&engine, Op::Acquire, started, &acquired);
        match acquired {
            Ok(lock) => Outcome::held(lock, &labels),
            Err(e) => failure(&e, &labels, keys),
        }
    })
}

/// Runs the checks of a call: a refusal is thrown as a [`Failure`].
fn checked<T>(env: &Env, check: impl FnOnce() -> Checked<T>) -> Result<T> {
    check().map_err(|refused| Failure::throw(env, refused))
}

/// A Redlock client over N independent Redis masters. Opens no connection until its first
/// operation.
#[napi]
pub struct Redlock {
    engine: Arc<redlock_core::Redlock>,
    labels: Arc<[String]>,
    settings: Settings,
    /// The `onNodeError` callback, for as long as this object lives.
    listener: std::cell::RefCell<Option<runtime::Listener>>,
}

#[napi]
impl Redlock {
    /// `clients`: a non-empty list of `redis://` URLs, option objects or client objects.
    /// `scripts`, node-redlock v5's custom scripts, is refused when given: ours keep
    /// node-redlock's meaning, and others could not be made safe.
    #[napi(constructor)]
    pub fn new(
        env: &Env,
        clients: Unknown,
        settings: Option<Unknown>,
        scripts: Option<Unknown>,
    ) -> Result<Self> {
        checked(env, || Redlock::create(clients, settings, scripts))
    }

    fn create(
        clients: Unknown,
        settings: Option<Unknown>,
        scripts: Option<Unknown>,
    ) -> Checked<Self> {
        if args::given(scripts).is_some() {
            return Err(args::invalid_value("scripts", settings::CUSTOM_SCRIPTS).into());
        }
        let settings = Settings::new(settings)?;
        let nodes = clients::nodes(&clients, settings.db)?;
        let engine = redlock_core::Redlock::new(nodes).map_err(|refused| {
            clients::refused(&refused.error, &format!("clients[{}]", refused.node))
        })?;
        let labels = engine
            .nodes()
            .iter()
            .map(|n| n.label().to_owned())
            .collect();
        Ok(Redlock {
            engine: Arc::new(engine),
            labels,
            settings,
            listener: Default::default(),
        })
    }

    /// The nodes, as `host:port/db`.
    #[napi(getter)]
    pub fn nodes(&self) -> Vec<String> {
        self.labels.to_vec()
    }

    /// The settings given to the constructor, with defaults filled in.
    #[napi(getter)]
    pub fn settings(&self) -> Settings {
        self.settings.clone()
    }

    /// Throws unless a lock of `duration` ms can be extended automatically with `settings`
    /// (checked before `using` acquires anything).
    #[napi]
    pub fn check_auto_extension(
        &self,
        env: &Env,
        duration: Unknown,
        settings: Option<Unknown>,
    ) -> Result<()> {
        checked(env, || {
            let duration = args::duration(&duration, "duration")?;
            self.settings
                .merge(settings, "settings")?
                .watch(duration, None)?;
            Ok(())
        })
    }

    /// Acquires a lock on `resources` (a name or a list of names) for `duration` ms.
    #[napi(ts_return_type = "Promise<Outcome>")]
    pub fn acquire<'env>(
        &self,
        env: &'env Env,
        resources: Unknown,
        duration: Unknown,
        settings: Option<Unknown>,
        cancellation: Option<&Cancellation>,
    ) -> Result<PromiseRaw<'env, Outcome>> {
        let (resources, ttl, settings) = checked(env, || {
            let resources = args::resources(&resources, "resources")?;
            let ttl = Duration::from_millis(args::duration(&duration, "duration")?);
            let settings = self.settings.merge(settings, "settings")?.to_core();
            self.check_slots(&resources, settings.fencing, "resources")?;
            Ok((resources, ttl, settings))
        })?;
        let (engine, labels, keys) = (self.engine.clone(), self.labels.clone(), resources.len());
        let cancel = cancellation.map(|c| c.token.clone()).unwrap_or_default();
        acquisition(env, engine, labels, keys, move |engine| async move {
            (engine.acquire_cancellable(resources, ttl, &settings, &cancel)).await
        })
    }

    /// Throws what `acquirePermits` would refuse of a semaphore's `resource` and `permits`.
    #[napi]
    pub fn check_semaphore(&self, env: &Env, resource: Unknown, permits: Unknown) -> Result<()> {
        checked(env, || args::semaphore(&resource, &permits).map(|_| ()))
    }

    /// Acquires `count` of the `permits` permits of semaphore `resource` for `duration` ms.
    #[napi(ts_return_type = "Promise<Outcome>")]
    #[allow(clippy::too_many_arguments)]
    pub fn acquire_permits<'env>(
        &self,
        env: &'env Env,
        resource: Unknown,
        permits: Unknown,
        duration: Unknown,
        count: Unknown,
        settings: Option<Unknown>,
        cancellation: Option<&Cancellation>,
    ) -> Result<PromiseRaw<'env, Outcome>> {
        let (resource, permits, count, ttl, settings) = checked(env, || {
            let (resource, permits) = args::semaphore(&resource, &permits)?;
            let ttl = Duration::from_millis(args::duration(&duration, "duration")?);
            let count = match count.get_type()? {
                napi::ValueType::Undefined => 1,
                _ => args::integer(&count, "settings.count", 1.0, f64::from(permits))? as u32,
            };
            let settings = self.settings.merge(settings, "settings")?.to_core();
            Ok((resource, permits, count, ttl, settings))
        })?;
        let (engine, labels) = (self.engine.clone(), self.labels.clone());
        let cancel = cancellation.map(|c| c.token.clone()).unwrap_or_default();
        acquisition(
            env,
            engine,
            labels,
            count as usize,
            move |engine| async move {
                (engine.acquire_permits(&resource, permits, count, ttl, &settings, &cancel)).await
            },
        )
    }

    /// Throws what `acquireReadWrite` would refuse of a read-write lock's `resource`.
    #[napi]
    pub fn check_read_write(&self, env: &Env, resource: Unknown) -> Result<()> {
        checked(env, || {
            args::one_resource(&resource, "resource").map(|_| ())
        })
    }

    /// Acquires the write side (`write` true) or the read side of the read-write lock on
    /// `resource` for `duration` ms.
    #[napi(ts_return_type = "Promise<Outcome>")]
    pub fn acquire_read_write<'env>(
        &self,
        env: &'env Env,
        resource: Unknown,
        write: bool,
        duration: Unknown,
        settings: Option<Unknown>,
        cancellation: Option<&Cancellation>,
    ) -> Result<PromiseRaw<'env, Outcome>> {
        let (resource, ttl, settings) = checked(env, || {
            let resource = args::one_resource(&resource, "resource")?;
            let ttl = Duration::from_millis(args::duration(&duration, "duration")?);
            let settings = self.settings.merge(settings, "settings")?.to_core();
            Ok((resource, ttl, settings))
        })?;
        let (engine, labels) = (self.engine.clone(), self.labels.clone());
        let cancel = cancellation.map(|c| c.token.clone()).unwrap_or_default();
        acquisition(env, engine, labels, 1, move |engine| async move {
            (engine.acquire_rw(&resource, write, ttl, &settings, &cancel)).await
        })
    }

    /// Extends `lock` to expire `duration` ms from now; updates it in place.
    #[napi(ts_return_type = "Promise<Outcome>")]
    pub fn extend<'env>(
        &self,
        env: &'env Env,
        lock: &Lock,
        duration: Unknown,
        settings: Option<Unknown>,
    ) -> Result<PromiseRaw<'env, Outcome>> {
        let (ttl, settings) = checked(env, || {
            self.check_owner(lock)?;
            let ttl = Duration::from_millis(args::duration(&duration, "duration")?);
            Ok((ttl, self.settings.merge(settings, "settings")?.to_core()))
        })?;
        let (engine, labels, lock) = (self.engine.clone(), self.labels.clone(), lock.inner.clone());
        runtime::spawn(env, async move {
            let keys = lock.resources.len();
            let started = Instant::now();
            let extended = engine.extend(&lock, ttl, &settings).await;
            counted(&engine, Op::Extend, started, &extended);
            match extended {
                Ok(()) => Outcome::held(lock, &labels),
                Err(e) => failure(&e, &labels, keys),
            }
        })
    }

    /// Releases `lock` on every node that still holds it.
    #[napi(ts_return_type = "Promise<Outcome>")]
    pub fn release<'env>(
        &self,
        env: &'env Env,
        lock: &Lock,
        settings: Option<Unknown>,
    ) -> Result<PromiseRaw<'env, Outcome>> {
        let settings = checked(env, || {
            self.check_owner(lock)?;
            Ok(self.settings.merge(settings, "settings")?.to_core())
        })?;
        let (engine, labels, lock) = (self.engine.clone(), self.labels.clone(), lock.inner.clone());
        runtime::spawn(env, async move {
            let keys = lock.resources.len();
            let started = Instant::now();
            let released = engine.release(&lock, &settings).await;
            counted(&engine, Op::Release, started, &released);
            match released {
                Ok(released) => {
                    Outcome::released(released.nodes_held, &released.attempts, &labels, keys)
                }
                Err(e) => failure(&e, &labels, keys),
            }
        })
    }

    /// What this client has done since it was made: operations by outcome with latency
    /// percentiles, each node's requests, errors and latencies, hand-offs, locks lost.
    #[napi]
    pub fn stats(&self) -> outcome::StatsReport {
        outcome::StatsReport::of(&self.engine.stats().snapshot(), &self.labels)
    }

    /// Keeps each node request's latency for [`Redlock::drain_requests`] from now on (or no
    /// longer): for telemetry.
    #[napi]
    pub fn sample_requests(&self, on: bool) {
        self.engine.stats().sample(on);
    }

    /// The requests sampled since the last call, in one batch.
    #[napi]
    pub fn drain_requests(&self) -> outcome::RequestSamples {
        let stats = self.engine.stats();
        outcome::RequestSamples::of(stats.drain(), stats.handoffs())
    }

    /// What every member holds for `resources` (a name or a list of names): values, TTLs and
    /// fencing counters, and the verdict. Read-only; each member bounded by `requestTimeout`.
    #[napi(ts_return_type = "Promise<Inspection>")]
    pub fn inspect<'env>(
        &self,
        env: &'env Env,
        resources: Unknown,
        settings: Option<Unknown>,
    ) -> Result<PromiseRaw<'env, Inspection>> {
        let (resources, timeout) = checked(env, || {
            let resources = args::resources(&resources, "resources")?;
            let settings = self.settings.merge(settings, "settings")?.to_core();
            Ok((resources, settings.request_timeout))
        })?;
        let (engine, labels) = (self.engine.clone(), self.labels.clone());
        runtime::spawn(env, async move {
            match engine.inspect(&resources, timeout).await {
                Ok(views) => Inspection::of(resources, &views, &labels),
                Err(e) => Inspection {
                    resources: Vec::new(),
                    error: Some(Failure::of(&e, &labels)),
                },
            }
        })
    }

    /// The lock on `resources` whose id (value) is `id`, for the original design's
    /// `releaseLock(resource, id)` and `renewLock(resource, id, ttl)`. Its expiration is
    /// not known here, so an extension is checked against the nodes only.
    #[napi]
    pub fn lock_by_id(&self, env: &Env, resources: Unknown, id: Unknown) -> Result<Lock> {
        checked(env, || {
            let resources = args::resources(&resources, "resource")?;
            self.check_slots(&resources, false, "resource")?;
            let id = args::string(&id, "lockId")?;
            if id.is_empty() {
                return Err(args::invalid_value("lockId", "it must not be empty").into());
            }
            let inner = self.engine.lock_by_value(resources, id, u64::MAX);
            Ok(Lock { inner })
        })
    }

    /// Keeps `lock` extended by `duration` ms, `settings.automaticExtensionThreshold` ms
    /// before each expiration, until the returned watchdog is stopped, the lock is lost, or
    /// `maxHold` ms have passed. `onLost` is called once if the lock is lost; while the
    /// watchdog runs, it keeps the process alive.
    #[napi]
    pub fn watch(
        &self,
        env: &Env,
        lock: &Lock,
        duration: Unknown,
        settings: Option<Unknown>,
        max_hold: Option<Unknown>,
        on_lost: Function<Outcome, ()>,
    ) -> Result<Watchdog> {
        let (watch, settings) = checked(env, || {
            self.check_owner(lock)?;
            let ttl = args::duration(&duration, "duration")?;
            let settings = self.settings.merge(settings, "settings")?;
            let max_hold = match args::given(max_hold) {
                Some(v) => Some(Duration::from_millis(args::duration(&v, "maxHold")?)),
                None => None,
            };
            Ok((settings.watch(ttl, max_hold)?, settings))
        })?;
        let tsfn = on_lost
            .build_threadsafe_function::<Outcome>()
            .callee_handled::<false>()
            .build()?;
        let labels = self.labels.clone();
        let (engine, lock) = (self.engine.clone(), lock.inner.clone());
        let keys = lock.resources.len();
        let stats = engine.stats().clone();
        // The watchdog is a task of the engine's runtime, started from the JS thread.
        let _engine = runtime::handle().enter();
        let watchdog =
            redlock_core::Watchdog::start(engine, lock, watch, settings.to_core(), move |lost| {
                let error = match lost {
                    redlock_core::Lost::Failed(error) => {
                        stats.lost();
                        error
                    }
                    redlock_core::Lost::MaxHold => redlock_core::Error::MaxHold,
                };
                let outcome = failure(&error, &labels, keys);
                tsfn.call(outcome, ThreadsafeFunctionCallMode::NonBlocking);
            });
        Ok(Watchdog {
            extensions: watchdog.extensions(),
            inner: std::sync::Mutex::new(Some(watchdog)),
        })
    }

    /// Calls `callback` with every node failure, from any operation, also those that arrive
    /// after the operation was decided. The callback does not keep the process alive.
    #[napi]
    pub fn on_node_error(&self, env: &Env, callback: Function<NodeErrorEvent, ()>) -> Result<()> {
        let (listener, caller) = runtime::Listener::new(env, napi::JsValue::raw(&callback))?;
        *self.listener.borrow_mut() = Some(listener);
        self.engine
            .set_node_error_listener(Some(Arc::new(move |node, error| {
                let event = NodeErrorEvent {
                    node: node.to_owned(),
                    code: error.code().to_owned(),
                    message: error.to_string(),
                };
                caller.call(event);
            })));
        Ok(())
    }

    /// Refuses, before anything is sent, a lock whose keys a Redis Cluster member could not
    /// take in one script (`RangeError`, `ERR_REDLOCK_CROSS_SLOT`).
    fn check_slots(&self, resources: &[String], fencing: bool, name: &str) -> Checked<()> {
        match self.engine.cross_slot(resources, fencing) {
            None => Ok(()),
            Some(cross) => {
                let member = format!("clients[{}] ({})", cross.node, self.labels[cross.node]);
                Err(args::cross_slot(name, &member, &cross).into())
            }
        }
    }

    fn check_owner(&self, lock: &Lock) -> Checked<()> {
        match self.engine.owns(&lock.inner) {
            true => Ok(()),
            false => {
                let why = "it was acquired by another Redlock";
                Err(args::invalid_value("lock", why).into())
            }
        }
    }

    /// Stops every operation under way, lets requests already sent finish (at most twice the
    /// request timeout, at most 5 s), then closes every connection; operations afterwards
    /// fail with `ERR_REDLOCK_CLOSED`.
    #[napi(ts_return_type = "Promise<void>")]
    pub fn quit<'env>(&self, env: &'env Env) -> Result<PromiseRaw<'env, ()>> {
        let engine = self.engine.clone();
        let grace = self.settings.to_core().quit_grace();
        runtime::spawn(env, async move {
            engine.quit(grace).await;
        })
    }

    /// Requests sent and not yet answered, the stragglers of decided rounds included.
    #[napi(getter)]
    pub fn in_flight(&self) -> u32 {
        self.engine.in_flight() as u32
    }
}

/// Cancels the acquisition it is given to; made by the front door for an `AbortSignal`.
#[napi]
pub struct Cancellation {
    token: redlock_core::CancellationToken,
}

#[napi]
impl Cancellation {
    #[napi(constructor)]
    #[allow(clippy::new_without_default)]
    pub fn new() -> Self {
        Cancellation {
            token: redlock_core::CancellationToken::new(),
        }
    }

    /// Stops the acquisition: it undoes what it set and rejects with `ABORT_ERR`.
    #[napi]
    pub fn cancel(&self) {
        self.token.cancel();
    }
}

/// Keeps a lock extended; made by `Redlock#watch`.
#[napi]
pub struct Watchdog {
    inner: std::sync::Mutex<Option<redlock_core::Watchdog>>,
    extensions: Arc<std::sync::atomic::AtomicU64>,
}

#[napi]
impl Watchdog {
    /// How many times the lock has been extended so far.
    #[napi(getter)]
    pub fn extensions(&self) -> u32 {
        self.extensions.load(std::sync::atomic::Ordering::Relaxed) as u32
    }

    /// Stops extending; resolves once an extension in flight has finished.
    #[napi(ts_return_type = "Promise<void>")]
    pub fn stop<'env>(&self, env: &'env Env) -> Result<PromiseRaw<'env, ()>> {
        let watchdog = self.inner.lock().unwrap_or_else(|p| p.into_inner()).take();
        runtime::spawn(env, async move {
            if let Some(watchdog) = watchdog {
                watchdog.stop().await;
            }
        })
    }
}

/// A node that failed a request.
#[napi(object)]
pub struct NodeErrorEvent {
    /// `host:port/db`.
    pub node: String,
    /// `ERR_REDLOCK_NODE_TIMEOUT`, `ERR_REDLOCK_NODE_CONNECTION` or `ERR_REDLOCK_NODE_SERVER`.
    pub code: String,
    /// What happened, in words.
    pub message: String,
}

/// A lock held (or once held) on a quorum of nodes. Made by `Redlock#acquire`.
#[napi]
pub struct Lock {
    inner: Arc<redlock_core::Lock>,
}

#[napi]
impl Lock {
    /// The locked resources.
    #[napi(getter)]
    pub fn resources(&self) -> Vec<String> {
        self.inner.resources.clone()
    }

    /// The random value stored under every key (the lock's id).
    #[napi(getter)]
    pub fn value(&self) -> String {
        self.inner.value.clone()
    }

    /// The fencing token taken with the lock (with the `fencing` setting), else undefined.
    #[napi(getter)]
    pub fn fencing_token(&self) -> Option<BigInt> {
        self.inner.fencing_token().map(BigInt::from)
    }

    /// The wall-clock instant (ms since the Unix epoch) at which the lock's validity ends;
    /// 0 once released.
    #[napi(getter)]
    pub fn expiration(&self) -> f64 {
        match self.inner.expiration() {
            u64::MAX => f64::INFINITY,
            ms => ms as f64,
        }
    }
}

/// A wrong type found by the front door (a `signal`, a `lock`, a `routine`), as the same
/// [`Failure`] the binding's own checks make: one format for every refused argument.
#[napi]
pub fn invalid_type(name: String, expected: String, value: Unknown) -> Failure {
    Failure::from(args::invalid_type(&name, &expected, &value))
}

impl From<Arc<redlock_core::Lock>> for Lock {
    fn from(inner: Arc<redlock_core::Lock>) -> Self {
        Lock { inner }
    }
}
