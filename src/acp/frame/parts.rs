//! The envelope's parts, found by the scanner or by serde: where `jsonrpc`, `id`, `method`,
//! `result`, `error` and `params.sessionId` sit in a line. Serde reads them through borrowing
//! views that skip everything else.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;

use super::{FrameError, Span};
use crate::acp::method::Method;

/// Borrowing view used only while parsing.
#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(borrow, default, deserialize_with = "present")]
    jsonrpc: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    id: Option<&'a RawValue>,
    #[serde(borrow, default)]
    method: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    params: Option<ParamsView<'a>>,
    #[serde(borrow, default, deserialize_with = "present")]
    result: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    error: Option<&'a RawValue>,
}

/// Deserialises a field that is present, even as `null`, into `Some`.
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<&'de RawValue>, D::Error> {
    <&RawValue>::deserialize(d).map(Some)
}

/// The part of `params` the proxy routes on: only `sessionId`; everything else is skipped.
#[derive(Default)]
struct ParamsView<'a> {
    session_id: Option<&'a RawValue>,
}

impl<'de: 'a, 'a> Deserialize<'de> for ParamsView<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = ParamsView<'a>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("params")
            }
            fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<Self::Value, M::Error> {
                let mut view = ParamsView::default();
                while let Some(key) = map.next_key::<Cow<'de, str>>()? {
                    if key == "sessionId" {
                        // A second `sessionId` would reach the peer unrewritten, and most
                        // parsers keep the last one: refuse the frame instead.
                        if view.session_id.is_some() {
                            return Err(de::Error::duplicate_field("sessionId"));
                        }
                        view.session_id = Some(map.next_value::<&'de RawValue>()?);
                    } else {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
                Ok(view)
            }
            fn visit_seq<S: de::SeqAccess<'de>>(self, mut seq: S) -> Result<Self::Value, S::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(ParamsView::default())
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(ParamsView::default())
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
                Ok(ParamsView::default())
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
                Ok(ParamsView::default())
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
                Ok(ParamsView::default())
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
                Ok(ParamsView::default())
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
                Ok(ParamsView::default())
            }
        }
        d.deserialize_any(V(std::marker::PhantomData))
    }
}

/// The envelope's parts, found by the scanner or by serde.
pub(super) struct Parts {
    pub jsonrpc: Option<Span>,
    pub id: Option<Span>,
    pub method: Option<Method>,
    pub result: Option<Span>,
    pub error: Option<Span>,
    /// `params.sessionId`, when it is a string.
    pub session_id: Option<Span>,
    pub chunk: Option<(Span, Span)>,
}

impl Parts {
    pub fn from_scan(raw: &[u8], env: crate::acp::scan::Envelope) -> Parts {
        Parts {
            method: env.method.map(|s| {
                // The scanner hands over only methods without escapes.
                let name = std::str::from_utf8(&raw[s.start + 1..s.end - 1]).unwrap_or_default();
                Method::from_name(name)
            }),
            jsonrpc: env.jsonrpc,
            id: env.id,
            result: env.result,
            error: env.error,
            session_id: env.session_id,
            chunk: env.chunk,
        }
    }

    pub fn from_serde(raw: &[u8]) -> Result<Parts, FrameError> {
        let env: Envelope = match serde_json::from_slice(raw) {
            Ok(env) => env,
            Err(e) if e.is_data() && serde_json::from_slice::<IgnoredAny>(raw).is_ok() => {
                // Valid JSON of the wrong shape, e.g. a duplicated or mistyped field. (A shape
                // error can surface before a syntax error further on, hence the check.)
                return Err(FrameError::Invalid {
                    reason: e.to_string(),
                    id: None,
                });
            }
            Err(e) => return Err(FrameError::Parse(e.to_string())),
        };
        Ok(Parts {
            jsonrpc: env.jsonrpc.map(|v| span_of(raw, v)),
            id: env.id.map(|v| span_of(raw, v)),
            method: env.method.as_deref().map(Method::from_name),
            result: env.result.map(|v| span_of(raw, v)),
            error: env.error.map(|v| span_of(raw, v)),
            session_id: env
                .params
                .and_then(|p| p.session_id)
                .filter(|v| v.get().starts_with('"'))
                .map(|v| span_of(raw, v)),
            chunk: None,
        })
    }
}

fn span_of(line: &[u8], value: &RawValue) -> Span {
    // `RawValue` borrows from `line`, so its address lies inside it.
    let start = value.get().as_ptr() as usize - line.as_ptr() as usize;
    start..start + value.get().len()
}
