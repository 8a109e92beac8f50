//! Argument checking: every value that comes from JavaScript is checked here, before the
//! engine sees it, and refused with a [`Refusal`]: Node's usual code, whether it is a
//! `TypeError` or a `RangeError`, the argument's name, and a message that names it. It
//! crosses to the front door as a `Failure` object ([`crate::outcome::Failure`]), which
//! `index.js` turns into an error of the caller's realm. Messages never echo strings, so a
//! password given in the wrong place is never shown.

use napi::bindgen_prelude::{JsObjectValue, JsValue, Object, Unknown};
use napi::ValueType;
use redlock_core::CrossSlot;

/// Which JavaScript error a refusal becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Type,
    Range,
}

/// A refused argument.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// Node's code: `ERR_INVALID_ARG_TYPE`, `ERR_INVALID_ARG_VALUE`, `ERR_OUT_OF_RANGE`, or
    /// `ERR_REDLOCK_CROSS_SLOT`.
    pub code: &'static str,
    pub kind: Kind,
    /// The argument, as the message names it (`settings.retryCount`, `clients[2]`).
    pub argument: String,
    pub message: String,
}

/// Why a call was refused: an argument, or an exception JavaScript already threw (a getter
/// of the caller's that throws) or napi reported.
pub enum Refused {
    Argument(Refusal),
    Thrown(napi::Error),
}

impl From<napi::Error> for Refused {
    fn from(error: napi::Error) -> Self {
        Refused::Thrown(error)
    }
}

impl From<Refusal> for Refused {
    fn from(refusal: Refusal) -> Self {
        Refused::Argument(refusal)
    }
}

/// The result of a check.
pub type Checked<T> = std::result::Result<T, Refused>;

/// The largest delay or timeout accepted, in ms: about 24.8 days, as for `setTimeout`.
pub const MAX_MS: f64 = 2_147_483_647.0;

/// The highest database number accepted (Redis's `databases` may be configured that high).
pub const MAX_DB: f64 = 1_000_000.0;

/// The longest lock accepted, in ms: `Number.MAX_SAFE_INTEGER`, as node-redlock accepts (its
/// own tests lock for a tenth of it). The engine's timers cope with any of them.
pub const MAX_DURATION_MS: f64 = 9_007_199_254_740_991.0;

/// A wrong type: `TypeError` with `ERR_INVALID_ARG_TYPE`.
pub fn invalid_type(name: &str, expected: &str, value: &Unknown) -> Refusal {
    let received = match value.get_type() {
        Ok(ValueType::Undefined) => "undefined".to_owned(),
        Ok(ValueType::Null) => "null".to_owned(),
        Ok(ValueType::Object) if value.is_array().unwrap_or(false) => {
            "an instance of Array".to_owned()
        }
        Ok(t) => format!("type {}", type_word(t)),
        Err(_) => "an unknown value".to_owned(),
    };
    refuse(
        "ERR_INVALID_ARG_TYPE",
        Kind::Type,
        name,
        format!("The \"{name}\" argument must be {expected}. Received {received}"),
    )
}

/// A value outside its range: `RangeError` with `ERR_OUT_OF_RANGE`.
pub fn out_of_range(name: &str, rule: &str, received: f64) -> Refusal {
    refuse(
        "ERR_OUT_OF_RANGE",
        Kind::Range,
        name,
        format!("The value of \"{name}\" is out of range. It must be {rule}. Received {received}"),
    )
}

/// A value of the right type that cannot be used: `TypeError` with `ERR_INVALID_ARG_VALUE`.
pub fn invalid_value(name: &str, reason: &str) -> Refusal {
    refuse(
        "ERR_INVALID_ARG_VALUE",
        Kind::Type,
        name,
        format!("The argument '{name}' is invalid: {reason}"),
    )
}

/// Keys of one lock in different Redis Cluster slots: `RangeError` with
/// `ERR_REDLOCK_CROSS_SLOT`, explaining hash tags.
pub fn cross_slot(name: &str, member: &str, cross: &CrossSlot) -> Refusal {
    let CrossSlot {
        first,
        other,
        counter,
        ..
    } = cross;
    let why = match counter {
        false => format!(
            "the keys of one lock must all hash to the same slot of the Redis Cluster {member}, and \"{first}\" and \"{other}\" do not. Give the resources a common hash tag, such as \"{{order:42}}:payment\" and \"{{order:42}}:invoice\": Redis Cluster hashes only the text between the first {{ and the next }}, so keys with the same tag share a slot"
        ),
        true => format!(
            "with fencing, the counter \"{other}\" of key \"{first}\" must share its slot of the Redis Cluster {member}, and it cannot, because the key has a }} but no hash tag. Give the resource a hash tag, such as \"{{orders}}:rest\": Redis Cluster hashes only the text between the first {{ and the next }}"
        ),
    };
    refuse(
        "ERR_REDLOCK_CROSS_SLOT",
        Kind::Range,
        name,
        format!("The argument '{name}' is invalid: {why}"),
    )
}

fn refuse(code: &'static str, kind: Kind, argument: &str, message: String) -> Refusal {
    Refusal {
        code,
        kind,
        argument: argument.to_owned(),
        message,
    }
}

fn type_word(t: ValueType) -> &'static str {
    match t {
        ValueType::Boolean => "boolean",
        ValueType::Number => "number",
        ValueType::String => "string",
        ValueType::Symbol => "symbol",
        ValueType::Object => "object",
        ValueType::Function => "function",
        ValueType::BigInt => "bigint",
        _ => "unknown",
    }
}

/// `undefined` and `null` both mean "not given".
pub fn given<'a>(value: Option<Unknown<'a>>) -> Option<Unknown<'a>> {
    value.filter(|v| !matches!(v.get_type(), Ok(ValueType::Undefined | ValueType::Null)))
}

/// A plain object (not an array, not a function).
pub fn object<'a>(value: &Unknown<'a>, name: &str) -> Checked<Object<'a>> {
    if value.get_type()? == ValueType::Object && !value.is_array()? {
        // SAFETY: checked to be an object just above.
        Ok(unsafe { value.cast::<Object>() }?)
    } else {
        Err(invalid_type(name, "of type object", value).into())
    }
}

/// `object[key]`, unless it is `undefined` or `null`.
pub fn field<'a>(object: &Object<'a>, key: &str) -> Checked<Option<Unknown<'a>>> {
    Ok(given(Some(object.get_named_property::<Unknown>(key)?)))
}

/// A string.
pub fn string(value: &Unknown, name: &str) -> Checked<String> {
    if value.get_type()? == ValueType::String {
        // SAFETY: checked to be a string just above.
        Ok(unsafe { value.cast::<String>() }?)
    } else {
        Err(invalid_type(name, "of type string", value).into())
    }
}

/// A boolean.
pub fn boolean(value: &Unknown, name: &str) -> Checked<bool> {
    if value.get_type()? == ValueType::Boolean {
        // SAFETY: checked to be a boolean just above.
        Ok(unsafe { value.cast::<bool>() }?)
    } else {
        Err(invalid_type(name, "of type boolean", value).into())
    }
}

/// A number that is not NaN.
pub fn number(value: &Unknown, name: &str) -> Checked<f64> {
    if value.get_type()? != ValueType::Number {
        return Err(invalid_type(name, "of type number", value).into());
    }
    // SAFETY: checked to be a number just above.
    let n = unsafe { value.cast::<f64>() }?;
    if n.is_nan() {
        return Err(out_of_range(name, "a number", n).into());
    }
    Ok(n)
}

/// An integer in `min..=max`.
pub fn integer(value: &Unknown, name: &str, min: f64, max: f64) -> Checked<i64> {
    let n = number(value, name)?;
    if n.fract() != 0.0 || n < min || n > max {
        return Err(out_of_range(name, &format!("an integer >= {min} and <= {max}"), n).into());
    }
    Ok(n as i64)
}

/// A finite number in `min..=max`.
pub fn bounded(value: &Unknown, name: &str, min: f64, max: f64) -> Checked<f64> {
    let n = number(value, name)?;
    if !n.is_finite() || n < min || n > max {
        return Err(out_of_range(name, &format!(">= {min} and <= {max}"), n).into());
    }
    Ok(n)
}

/// A lock duration (TTL) in ms: an integer from 1 to [`MAX_DURATION_MS`]. A number that is
/// not an integer (NaN and infinities included) is refused in node-redlock's own words, which
/// its users' tests match; one out of range says the range.
pub fn duration(value: &Unknown, name: &str) -> Checked<u64> {
    if value.get_type()? != ValueType::Number {
        return Err(invalid_type(name, "of type number", value).into());
    }
    // SAFETY: checked to be a number just above.
    let n = unsafe { value.cast::<f64>() }?;
    if n.fract() != 0.0 || n.is_nan() {
        let what = match name {
            "duration" => "Duration".to_owned(),
            other => format!("The \"{other}\" argument"),
        };
        let message = format!("{what} must be an integer value in milliseconds.");
        return Err(refuse("ERR_OUT_OF_RANGE", Kind::Range, name, message).into());
    }
    if !(1.0..=MAX_DURATION_MS).contains(&n) {
        return Err(out_of_range(
            name,
            &format!("an integer >= 1 and <= {MAX_DURATION_MS}"),
            n,
        )
        .into());
    }
    Ok(n as u64)
}

/// A semaphore's resource (one non-empty string) and its number of permits (an integer in
/// 1..=[`redlock_core::semaphore::MAX_PERMITS`]).
pub fn semaphore(resource: &Unknown, permits: &Unknown) -> Checked<(String, u32)> {
    let resource = one_resource(resource, "resource")?;
    let most = f64::from(redlock_core::semaphore::MAX_PERMITS);
    let permits = integer(permits, "permits", 1.0, most)? as u32;
    Ok((resource, permits))
}

/// One resource name: a non-empty string.
pub fn one_resource(value: &Unknown, name: &str) -> Checked<String> {
    if value.get_type()? != ValueType::String {
        return Err(invalid_type(name, "of type string", value).into());
    }
    let resource = string(value, name)?;
    if resource.is_empty() {
        return Err(invalid_value(name, "it is an empty string").into());
    }
    Ok(resource)
}

/// One resource name or a non-empty array of them; each a non-empty string.
pub fn resources(value: &Unknown, name: &str) -> Checked<Vec<String>> {
    let names = match value.get_type()? {
        ValueType::String => vec![string(value, name)?],
        ValueType::Object if value.is_array()? => {
            // SAFETY: checked to be an array just above.
            let array = unsafe { value.cast::<Object>() }?;
            let len = array.get_array_length()?;
            if len == 0 {
                return Err(invalid_value(name, "it must name at least one resource").into());
            }
            (0..len)
                .map(|i| string(&array.get_element::<Unknown>(i)?, &format!("{name}[{i}]")))
                .collect::<Checked<Vec<_>>>()?
        }
        _ => {
            let expected = "of type string or an array of strings";
            return Err(invalid_type(name, expected, value).into());
        }
    };
    if let Some(i) = names.iter().position(String::is_empty) {
        let label = if value.is_array()? {
            format!("{name}[{i}]")
        } else {
            name.to_owned()
        };
        return Err(invalid_value(&label, "a resource name must not be empty").into());
    }
    Ok(names)
}
