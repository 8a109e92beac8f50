//! Where the engine runs, and how its answers reach JavaScript.
//!
//! The engine runs on one thread of its own, with a current-thread tokio runtime, made on
//! first use and shared by every `Redlock` of the process: its tasks, its connections' I/O
//! and its timers all live there, so a lock's round costs no hop between worker threads.
//!
//! Answers go back through one mailbox per JavaScript environment: the engine thread puts
//! each settled operation in it and wakes the JavaScript thread only when the mailbox was
//! empty; the JavaScript thread then settles every promise waiting there in one go. Under
//! load, one wake-up settles many promises, and no operation makes a threadsafe function
//! of its own. While an operation is pending, the mailbox keeps the process alive, as a
//! pending promise of napi's own does. Node-error events travel through the same mailbox
//! ([`Listener`]), so that a listener hears of a node's failure before the promise of the
//! operation it failed settles.

use std::cell::RefCell;
use std::ffi::c_void;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::ptr;
use std::sync::{Arc, LazyLock, Mutex};

use futures_util::FutureExt;
use napi::bindgen_prelude::{PromiseRaw, ToNapiValue};
use napi::{check_status, sys, Env, Error, JsError, Result, Status};
use tokio::runtime::Handle;

static ENGINE: LazyLock<Handle> = LazyLock::new(|| {
    let (sent, handle) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("redlock-rs".to_owned())
        .spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                // New operations (spawned from the JavaScript thread) run before the tasks
                // they wake, each connection's writer among them: every operation that has
                // arrived queues its commands first, and each connection then writes them
                // all at once, one write per node for the batch instead of one per command.
                .global_queue_interval(1)
                // Answers are read more often than tokio's default of every 61 tasks, so
                // that a batch of new operations does not hold up the answers to earlier ones.
                .event_interval(8)
                .enable_all()
                .build()
                .expect("the engine's runtime cannot be built");
            let _ = sent.send(runtime.handle().clone());
            // Runs the engine's tasks for as long as the process lives.
            runtime.block_on(std::future::pending::<()>());
        })
        .expect("the engine's thread cannot be started");
    handle.recv().expect("the engine's thread stopped at start")
});

/// Starts the engine's thread as the addon loads, so that the process's threads and
/// descriptors are all there from the start (none appears with the first lock).
/// (At module registration: a library constructor, which runs while the library is being
/// loaded, must not start a thread.)
#[napi_derive::napi(module_exports)]
#[cfg_attr(test, allow(dead_code))]
pub fn start(_exports: napi::bindgen_prelude::Object) -> Result<()> {
    LazyLock::force(&ENGINE);
    Ok(())
}

/// The engine's runtime.
pub fn handle() -> &'static Handle {
    &ENGINE
}

/// Runs `work` on the engine's thread; the returned promise resolves with its result on the
/// JavaScript thread (and rejects if `work` panics).
pub fn spawn<'env, T, F>(env: &'env Env, work: F) -> Result<PromiseRaw<'env, T>>
where
    T: ToNapiValue + Send + 'static,
    F: Future<Output = T> + Send + 'static,
{
    let mut deferred = ptr::null_mut();
    let mut promise = ptr::null_mut();
    check_status!(unsafe { sys::napi_create_promise(env.raw(), &mut deferred, &mut promise) })?;
    let mailbox = MAILBOX.with(|slot| Mailbox::enter(slot, env.raw()))?;
    let deferred = Deferred(deferred);
    ENGINE.spawn(async move {
        let answer = AssertUnwindSafe(work).catch_unwind().await;
        mailbox.post(Box::new(move |env| {
            let value = match answer {
                Ok(value) => unsafe { T::to_napi_value(env, value) },
                Err(_) => Err(Error::new(
                    Status::GenericFailure,
                    "redlock-rs: the engine failed (a panic); this is a bug",
                )),
            };
            unsafe { deferred.settle(env, value) };
            1
        }));
    });
    Ok(PromiseRaw::new(env.raw(), promise))
}

/// What the JavaScript thread does with one message of the engine: settle a promise or call
/// a listener. Answers how many promises it settled.
type Delivery = Box<dyn FnOnce(sys::napi_env) -> usize + Send>;

/// A promise's resolver. It is only ever used on its environment's JavaScript thread.
struct Deferred(sys::napi_deferred);

// SAFETY: the engine thread only carries the handle to the mailbox; it is settled, or
// dropped unused once its environment is gone, on the JavaScript thread.
unsafe impl Send for Deferred {}

impl Deferred {
    /// Resolves the promise with `value`, or rejects it with the error.
    unsafe fn settle(self, env: sys::napi_env, value: Result<sys::napi_value>) {
        unsafe {
            match value {
                Ok(value) => sys::napi_resolve_deferred(env, self.0, value),
                Err(error) => {
                    let error = JsError::from(error).into_value(env);
                    sys::napi_reject_deferred(env, self.0, error)
                }
            };
        }
    }
}

/// The engine thread's side of one environment's mailbox.
struct Shared {
    inbox: Mutex<Inbox>,
}

struct Inbox {
    deliveries: Vec<Delivery>,
    /// `None` once the environment is torn down: answers are dropped from then on.
    wake: Option<Tsfn>,
}

#[derive(Clone, Copy)]
struct Tsfn(sys::napi_threadsafe_function);

// SAFETY: a threadsafe function is made to be called from any thread; it is only called
// under the inbox's lock, which the environment's teardown takes before clearing it.
unsafe impl Send for Tsfn {}

impl Shared {
    /// Hands a delivery to the JavaScript thread, waking it if the mailbox was empty
    /// (otherwise a wake-up is already on its way and will take this one too).
    fn post(&self, delivery: Delivery) {
        let mut inbox = self.inbox.lock().unwrap_or_else(|p| p.into_inner());
        let Some(wake) = inbox.wake else {
            return;
        };
        let first = inbox.deliveries.is_empty();
        inbox.deliveries.push(delivery);
        if first {
            // SAFETY: the environment has not been torn down (it clears `wake` first).
            unsafe {
                sys::napi_call_threadsafe_function(
                    wake.0,
                    ptr::null_mut(),
                    sys::ThreadsafeFunctionCallMode::nonblocking,
                );
            }
        }
    }
}

/// The JavaScript thread's side: its environment, its threadsafe function, and how many
/// promises are pending (while any is, the function is referenced and keeps Node alive).
struct Mailbox {
    env: sys::napi_env,
    wake: Tsfn,
    shared: Arc<Shared>,
    pending: usize,
}

thread_local! {
    static MAILBOX: RefCell<Option<Mailbox>> = const { RefCell::new(None) };
}

impl Mailbox {
    /// Counts one more pending promise of `env`, opening its mailbox on first use, and
    /// returns the engine thread's side of it.
    fn enter(slot: &RefCell<Option<Mailbox>>, env: sys::napi_env) -> Result<Arc<Shared>> {
        let mut slot = slot.borrow_mut();
        let mailbox = Mailbox::of(&mut slot, env)?;
        if mailbox.pending == 0 {
            check_status!(unsafe { sys::napi_ref_threadsafe_function(env, mailbox.wake.0) })?;
        }
        mailbox.pending += 1;
        Ok(mailbox.shared.clone())
    }

    /// `env`'s mailbox, opened on first use.
    fn of(slot: &mut Option<Mailbox>, env: sys::napi_env) -> Result<&mut Mailbox> {
        if slot.as_ref().is_none_or(|m| m.env != env) {
            *slot = Some(Mailbox::open(env)?);
        }
        Ok(slot.as_mut().expect("opened above"))
    }

    fn open(env: sys::napi_env) -> Result<Mailbox> {
        let shared = Arc::new(Shared {
            inbox: Mutex::new(Inbox {
                deliveries: Vec::new(),
                wake: None,
            }),
        });
        let mut name = ptr::null_mut();
        let label = "redlock-rs";
        check_status!(unsafe {
            sys::napi_create_string_utf8(
                env,
                label.as_ptr().cast(),
                label.len() as isize,
                &mut name,
            )
        })?;
        // The function's context owns one reference (given back by `finalize`), the cleanup
        // hook another (given back by `teardown`).
        let context = Arc::into_raw(shared.clone()) as *mut c_void;
        let mut wake = ptr::null_mut();
        let created = check_status!(unsafe {
            sys::napi_create_threadsafe_function(
                env,
                ptr::null_mut(),
                ptr::null_mut(),
                name,
                0,
                1,
                context,
                Some(finalize),
                context,
                Some(deliver),
                &mut wake,
            )
        });
        if let Err(error) = created {
            drop(unsafe { Arc::from_raw(context as *const Shared) });
            return Err(error);
        }
        let wake = Tsfn(wake);
        // Not referenced while nothing is pending, so that it never keeps Node alive idle.
        check_status!(unsafe { sys::napi_unref_threadsafe_function(env, wake.0) })?;
        // Registered after the function, so that it runs before Node tears the function down
        // (hooks run in reverse order of registration).
        let hook = Arc::into_raw(shared.clone()) as *mut c_void;
        check_status!(unsafe { sys::napi_add_env_cleanup_hook(env, Some(teardown), hook) })?;
        shared.inbox.lock().unwrap_or_else(|p| p.into_inner()).wake = Some(wake);
        Ok(Mailbox {
            env,
            wake,
            shared,
            pending: 0,
        })
    }

    /// `settled` promises were settled: once none is pending, Node may exit.
    fn settled(&mut self, settled: usize) {
        self.pending -= settled.min(self.pending);
        if self.pending == 0 {
            unsafe { sys::napi_unref_threadsafe_function(self.env, self.wake.0) };
        }
    }
}

/// A JavaScript function the engine calls, through the mailbox, with events (node errors):
/// held by the object that registered it, and forgotten when that object goes. It does not
/// keep the process alive.
pub struct Listener {
    env: sys::napi_env,
    slot: Arc<Slot>,
}

/// The engine's side of a [`Listener`]: calls it from any thread.
#[derive(Clone)]
pub struct Caller {
    mailbox: Arc<Shared>,
    slot: Arc<Slot>,
}

/// The listener's function, until the listener is dropped.
struct Slot(Mutex<Option<Reference>>);

struct Reference(sys::napi_ref);

// SAFETY: the reference is only read and deleted on its environment's JavaScript thread.
unsafe impl Send for Reference {}

impl Listener {
    /// A listener calling `function`, and the engine's side of it.
    pub fn new(env: &Env, function: sys::napi_value) -> Result<(Listener, Caller)> {
        let env = env.raw();
        let mailbox = MAILBOX
            .with(|slot| Mailbox::of(&mut slot.borrow_mut(), env).map(|m| m.shared.clone()))?;
        let mut reference = ptr::null_mut();
        check_status!(unsafe { sys::napi_create_reference(env, function, 1, &mut reference) })?;
        let slot = Arc::new(Slot(Mutex::new(Some(Reference(reference)))));
        let caller = Caller {
            mailbox,
            slot: slot.clone(),
        };
        Ok((Listener { env, slot }, caller))
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        let taken = self.slot.0.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(reference) = taken {
            unsafe { sys::napi_delete_reference(self.env, reference.0) };
        }
    }
}

impl Caller {
    /// Calls the listener with `argument` on the JavaScript thread, after whatever the engine
    /// posted before; an exception it throws is reported as uncaught, as an event
    /// listener's would be.
    pub fn call<A: ToNapiValue + Send + 'static>(&self, argument: A) {
        let slot = self.slot.clone();
        self.mailbox.post(Box::new(move |env| unsafe {
            let mut function = ptr::null_mut();
            {
                // Not held while the function runs: it may drop the listener.
                let held = slot.0.lock().unwrap_or_else(|p| p.into_inner());
                let Some(reference) = held.as_ref() else {
                    return 0;
                };
                sys::napi_get_reference_value(env, reference.0, &mut function);
            }
            if function.is_null() {
                return 0;
            }
            let Ok(argument) = A::to_napi_value(env, argument) else {
                return 0;
            };
            let (mut this, mut result) = (ptr::null_mut(), ptr::null_mut());
            sys::napi_get_undefined(env, &mut this);
            let status = sys::napi_call_function(env, this, function, 1, &argument, &mut result);
            if status == sys::Status::napi_pending_exception {
                let mut exception = ptr::null_mut();
                sys::napi_get_and_clear_last_exception(env, &mut exception);
                sys::napi_fatal_exception(env, exception);
            }
            0
        }));
    }
}

/// Runs on the JavaScript thread when woken: delivers everything waiting in the mailbox.
unsafe extern "C" fn deliver(
    env: sys::napi_env,
    _callback: sys::napi_value,
    context: *mut c_void,
    _data: *mut c_void,
) {
    if env.is_null() {
        return;
    }
    let shared = unsafe { &*(context as *const Shared) };
    let deliveries = std::mem::take(
        &mut shared
            .inbox
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .deliveries,
    );
    let count = deliveries.into_iter().map(|delivery| delivery(env)).sum();
    MAILBOX.with(|slot| {
        if let Some(mailbox) = slot.borrow_mut().as_mut().filter(|m| m.env == env) {
            mailbox.settled(count);
        }
    });
}

/// The environment is going away: stop calling its threadsafe function, and drop what waits.
unsafe extern "C" fn teardown(hook: *mut c_void) {
    let shared = unsafe { Arc::from_raw(hook as *const Shared) };
    let mut inbox = shared.inbox.lock().unwrap_or_else(|p| p.into_inner());
    inbox.wake = None;
    inbox.deliveries.clear();
}

/// Node finalized the threadsafe function: give back its context's reference.
unsafe extern "C" fn finalize(_env: sys::napi_env, data: *mut c_void, _hint: *mut c_void) {
    drop(unsafe { Arc::from_raw(data as *const Shared) });
}
