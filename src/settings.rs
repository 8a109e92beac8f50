//! The `settings` argument: given to the constructor, and overridable on every call.

use std::time::Duration;

use napi::bindgen_prelude::{
    JsObjectValue, KeyCollectionMode, KeyConversion, KeyFilter, Object, ToNapiValue, TypeName,
    Unknown,
};
use napi::{sys, ValueType};
use napi_derive::napi;
use redlock_core::{GuardMode, RestartGuard, RetryStrategy, Watch};

use crate::args::{
    boolean, bounded, field, integer, invalid_type, invalid_value, object, out_of_range, string,
    Checked, MAX_DB, MAX_MS,
};

/// How a `Redlock` behaves. Every field may be given to the constructor and overridden
/// per call.
#[napi(object, object_from_js = false)]
#[derive(Clone, Debug, PartialEq)]
pub struct Settings {
    /// Expected clock drift between nodes, as a fraction of the lock's duration; it is
    /// subtracted from the validity. Default 0.01; from 0 to below 1.
    pub drift_factor: f64,
    /// Retries after the first attempt. Default 10; -1 retries until the lock is acquired.
    pub retry_count: i64,
    /// The pause between attempts in ms (the first pause, with `'exponential'`). Default 200.
    pub retry_delay: f64,
    /// A random amount in ms, up to this much, added to or taken from each pause. Default 100.
    pub retry_jitter: f64,
    /// `'fixed'` (default): every pause is `retryDelay ± retryJitter`. `'exponential'`: the
    /// pause doubles after each failed attempt, up to `maxRetryDelay`.
    #[napi(ts_type = "'fixed' | 'exponential'")]
    pub retry_strategy: String,
    /// The longest pause of the `'exponential'` strategy, in ms. Default 5000.
    pub max_retry_delay: f64,
    /// How long one node may take to answer one request, the connect included, in ms.
    /// It is also never longer than the lock's duration. Default 500.
    pub request_timeout: f64,
    /// How long before a lock's expiration `using` extends it, in ms. Default 500; at
    /// least 100 ms below the lock's duration.
    pub automatic_extension_threshold: f64,
    /// Whether a waiter wakes as soon as the holder releases (pub/sub notices, default
    /// `true`) or only polls every `retryDelay` (`false`, for servers without pub/sub).
    pub wake_on_release: bool,
    /// The longest an acquisition may wait in all, in ms; it then rejects with
    /// `AcquireTimeoutError`. Default: no limit but the retries.
    pub acquire_timeout: Option<f64>,
    /// Whether each acquisition also takes a fencing token (`lock.fencingToken`, a bigint
    /// that grows with every acquisition of a resource), at the cost of one more round trip.
    /// Default `false`.
    pub fencing: bool,
    /// The restart guard: whether an acquisition leaves out the votes of servers that
    /// restarted less than `restartGuardWindow` ago, which may have forgotten locks they
    /// granted. `true` (default): while those servers are a minority, so that the others
    /// can still form a quorum; `'strict'`: always; `false`: never. Servers that persist every
    /// write (`appendfsync always`) are never left out.
    #[napi(ts_type = "boolean | 'strict'")]
    pub restart_guard: GuardSetting,
    /// How long a server must have been up before its votes for an acquisition count, in
    /// ms: the longest duration of any lock on these servers. Raised to the longest duration
    /// this `Redlock` has acquired or extended a lock for. Default 60000.
    pub restart_guard_window: f64,
    /// The database the lock keys live in on every plain (not cluster) member, whatever
    /// database the client is on, as `@sesamecare-oss/redlock`'s `db` does. Default: each
    /// client's own database, as node-redlock does (`redlock-rs/sesame` defaults it to 0).
    /// Given to the constructor only.
    pub db: Option<u32>,
}

impl Default for Settings {
    /// The engine's defaults ([`redlock_core::Settings::default`], [`Watch::DEFAULT_THRESHOLD`]).
    fn default() -> Self {
        let core = redlock_core::Settings::default();
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        let (strategy, delay, jitter, max_delay) = match core.retry {
            RetryStrategy::Fixed { delay, jitter } => {
                ("fixed", delay, jitter, RetryStrategy::MAX_DELAY)
            }
            RetryStrategy::Exponential {
                delay,
                max_delay,
                jitter,
            } => ("exponential", delay, jitter, max_delay),
        };
        Settings {
            drift_factor: core.drift_factor,
            retry_count: core.retry_count.map_or(-1, i64::from),
            retry_delay: ms(delay),
            retry_jitter: ms(jitter),
            retry_strategy: strategy.into(),
            max_retry_delay: ms(max_delay),
            request_timeout: ms(core.request_timeout),
            automatic_extension_threshold: ms(Watch::DEFAULT_THRESHOLD),
            wake_on_release: core.wake_on_release,
            acquire_timeout: core.acquire_timeout.map(ms),
            fencing: core.fencing,
            restart_guard: GuardSetting(core.restart_guard.mode),
            restart_guard_window: ms(core.restart_guard.window),
            db: None,
        }
    }
}

/// The `restartGuard` setting as JavaScript shows it: `true`, `false` or `'strict'`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GuardSetting(pub GuardMode);

impl TypeName for GuardSetting {
    fn type_name() -> &'static str {
        "boolean | 'strict'"
    }

    fn value_type() -> ValueType {
        ValueType::Unknown
    }
}

impl ToNapiValue for GuardSetting {
    unsafe fn to_napi_value(env: sys::napi_env, value: Self) -> napi::Result<sys::napi_value> {
        // SAFETY: as for every value napi converts: `env` is the current environment.
        unsafe {
            match value.0 {
                GuardMode::Off => bool::to_napi_value(env, false),
                GuardMode::On => bool::to_napi_value(env, true),
                GuardMode::Strict => <&str>::to_napi_value(env, "strict"),
            }
        }
    }
}

/// The settings a `Redlock` knows, besides a call's `signal` (read by the front door).
const KNOWN: [&str; 14] = [
    "driftFactor",
    "retryCount",
    "retryDelay",
    "retryJitter",
    "retryStrategy",
    "maxRetryDelay",
    "requestTimeout",
    "automaticExtensionThreshold",
    "wakeOnRelease",
    "acquireTimeout",
    "fencing",
    "restartGuard",
    "restartGuardWindow",
    "db",
];

/// Why node-redlock's custom scripts are refused.
pub const CUSTOM_SCRIPTS: &str =
    "redlock-rs runs its own scripts (with node-redlock's meaning); custom scripts are not supported";

/// Where settings are given: the constructor's are the defaults of every call.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Given {
    Constructor,
    Call,
}

impl Settings {
    /// The constructor's settings: the defaults with the fields given in `value` replaced.
    pub fn new(value: Option<Unknown>) -> Checked<Settings> {
        Settings::default().merge_given(value, "settings", Given::Constructor)
    }

    /// These settings with the fields given in `value` (an object, or undefined) for one
    /// call replaced.
    pub fn merge(&self, value: Option<Unknown>, name: &str) -> Checked<Settings> {
        self.merge_given(value, name, Given::Call)
    }

    fn merge_given(&self, value: Option<Unknown>, name: &str, place: Given) -> Checked<Settings> {
        let mut merged = self.clone();
        let Some(value) = crate::args::given(value) else {
            return Ok(merged);
        };
        let given = object(&value, name)?;
        let at = |key: &str| format!("{name}.{key}");
        // A misspelt or unsupported setting would otherwise change nothing, silently.
        for key in own_keys(&given)? {
            let signal = key == "signal";
            let known = KNOWN.contains(&key.as_str()) || (signal && place == Given::Call);
            if !known {
                let why = match key.as_str() {
                    "signal" => "an AbortSignal is given per call, to acquire or using".to_owned(),
                    // node-redlock v4's custom scripts: ours keep node-redlock's meaning, and
                    // running other scripts instead could not be made safe.
                    "lockScript" | "unlockScript" | "extendScript" => CUSTOM_SCRIPTS.to_owned(),
                    _ => format!(
                        "redlock-rs has no such setting; the settings are {}",
                        KNOWN.join(", ")
                    ),
                };
                return Err(invalid_value(&at(&key), &why).into());
            }
        }
        if let Some(v) = field(&given, "driftFactor")? {
            merged.drift_factor = bounded(&v, &at("driftFactor"), 0.0, 0.99)?;
        }
        if let Some(v) = field(&given, "retryCount")? {
            merged.retry_count = integer(&v, &at("retryCount"), -1.0, MAX_MS)?;
        }
        if let Some(v) = field(&given, "retryDelay")? {
            merged.retry_delay = bounded(&v, &at("retryDelay"), 0.0, MAX_MS)?;
        }
        if let Some(v) = field(&given, "retryJitter")? {
            merged.retry_jitter = bounded(&v, &at("retryJitter"), 0.0, MAX_MS)?;
        }
        if let Some(v) = field(&given, "retryStrategy")? {
            let strategy = string(&v, &at("retryStrategy"))?;
            if strategy != "fixed" && strategy != "exponential" {
                return Err(invalid_value(
                    &at("retryStrategy"),
                    "it must be 'fixed' or 'exponential'",
                )
                .into());
            }
            merged.retry_strategy = strategy;
        }
        if let Some(v) = field(&given, "maxRetryDelay")? {
            merged.max_retry_delay = bounded(&v, &at("maxRetryDelay"), 0.0, MAX_MS)?;
        }
        if let Some(v) = field(&given, "requestTimeout")? {
            merged.request_timeout = bounded(&v, &at("requestTimeout"), 1.0, MAX_MS)?;
        }
        if let Some(v) = field(&given, "automaticExtensionThreshold")? {
            merged.automatic_extension_threshold =
                bounded(&v, &at("automaticExtensionThreshold"), 0.0, MAX_MS)?;
        }
        if let Some(v) = field(&given, "wakeOnRelease")? {
            merged.wake_on_release = boolean(&v, &at("wakeOnRelease"))?;
        }
        if let Some(v) = field(&given, "fencing")? {
            merged.fencing = boolean(&v, &at("fencing"))?;
        }
        if let Some(v) = field(&given, "restartGuard")? {
            merged.restart_guard = GuardSetting(guard_mode(&v, &at("restartGuard"))?);
        }
        if let Some(v) = field(&given, "restartGuardWindow")? {
            merged.restart_guard_window = bounded(&v, &at("restartGuardWindow"), 0.0, MAX_MS)?;
        }
        if let Some(v) = field(&given, "acquireTimeout")? {
            // 0 would end every acquisition before any node could answer.
            merged.acquire_timeout = Some(bounded(&v, &at("acquireTimeout"), 1.0, MAX_MS)?);
        }
        if let Some(v) = field(&given, "db")? {
            let db = integer(&v, &at("db"), 0.0, MAX_DB)? as u32;
            if place == Given::Call && merged.db != Some(db) {
                return Err(invalid_value(
                    &at("db"),
                    "the database is chosen once, by the constructor's settings: every connection is opened on it",
                ).into());
            }
            merged.db = Some(db);
        }
        Ok(merged)
    }

    /// The watchdog of a lock of `duration` ms that these settings keep extended, refused
    /// when its `automaticExtensionThreshold` leaves less than [`Watch::MIN_GAP`] of the
    /// lock between two extensions, as node-redlock does.
    pub fn watch(&self, duration: u64, max_hold: Option<Duration>) -> Checked<Watch> {
        let threshold = self.automatic_extension_threshold;
        let watch = Watch {
            ttl: Duration::from_millis(duration),
            threshold: Duration::from_secs_f64(threshold / 1000.0),
            max_hold,
        };
        if !watch.leaves_gap() {
            let gap = Watch::MIN_GAP.as_millis();
            let rule = format!("at least {gap} ms below the lock's duration ({duration})");
            let name = "settings.automaticExtensionThreshold";
            return Err(out_of_range(name, &rule, threshold).into());
        }
        Ok(watch)
    }

    /// The engine's view of these settings.
    pub fn to_core(&self) -> redlock_core::Settings {
        let ms = Duration::from_secs_f64;
        let (delay, jitter) = (
            ms(self.retry_delay / 1000.0),
            ms(self.retry_jitter / 1000.0),
        );
        redlock_core::Settings {
            drift_factor: self.drift_factor,
            retry_count: u32::try_from(self.retry_count).ok(),
            retry: if self.retry_strategy == "exponential" {
                RetryStrategy::Exponential {
                    delay,
                    jitter,
                    max_delay: ms(self.max_retry_delay / 1000.0),
                }
            } else {
                RetryStrategy::Fixed { delay, jitter }
            },
            request_timeout: ms(self.request_timeout / 1000.0),
            wake_on_release: self.wake_on_release,
            acquire_timeout: self.acquire_timeout.map(|t| ms(t / 1000.0)),
            fencing: self.fencing,
            restart_guard: RestartGuard {
                mode: self.restart_guard.0,
                window: ms(self.restart_guard_window / 1000.0),
            },
        }
    }
}

/// The `restartGuard` setting: `true`, `false` or `'strict'`.
fn guard_mode(value: &Unknown, name: &str) -> Checked<GuardMode> {
    if value.get_type()? == ValueType::Boolean {
        return Ok(match boolean(value, name)? {
            true => GuardMode::On,
            false => GuardMode::Off,
        });
    }
    match value.get_type()? {
        ValueType::String if string(value, name)? == "strict" => Ok(GuardMode::Strict),
        ValueType::String => Err(invalid_value(name, "it must be true, false or 'strict'").into()),
        _ => Err(invalid_type(name, "of type boolean or the string 'strict'", value).into()),
    }
}

/// The object's own enumerable string keys (symbols are not settings and are ignored).
fn own_keys(object: &Object) -> Checked<Vec<String>> {
    let names = object.get_all_property_names(
        KeyCollectionMode::OwnOnly,
        KeyFilter::Enumerable,
        KeyConversion::NumbersToStrings,
    )?;
    let mut keys = Vec::new();
    for i in 0..names.get_array_length()? {
        let name: Unknown = names.get_element(i)?;
        if name.get_type()? == ValueType::String {
            // SAFETY: checked to be a string just above.
            keys.push(unsafe { name.cast::<String>() }?);
        }
    }
    Ok(keys)
}
