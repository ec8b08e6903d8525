//! JWT-SVIDs and JWT bundles (SPIFFE JWT-SVID spec). Claims are read without verifying the
//! signature: the token comes from the local agent, and verification is the relying party's job
//! (or the agent's, through [`crate::WorkloadApiClient::validate_jwt_svid`]).

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::{URL_SAFE, URL_SAFE_NO_PAD};
use serde_json::Value;

use crate::bundle::{BundleMap, BundleSource, JwtBundle};
use crate::pb;
use crate::{Error, SpiffeId, TrustDomain};

/// A JWT in compact serialization. `Debug` does not print it: a token is a bearer credential.
#[derive(Clone, PartialEq, Eq)]
pub struct JwtToken(String);

impl JwtToken {
    /// The token text (`header.payload.signature`).
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for JwtToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("JwtToken(<redacted>)")
    }
}

/// A JWT-SVID with the claims a caller needs to schedule its refresh.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JwtSvid {
    token: JwtToken,
    spiffe_id: SpiffeId,
    hint: String,
    audience: Vec<String>,
    expiry: SystemTime,
}

impl JwtSvid {
    /// The token.
    #[must_use]
    pub fn token(&self) -> &JwtToken {
        &self.token
    }

    /// The SPIFFE ID (equal to the token's `sub` claim).
    #[must_use]
    pub fn spiffe_id(&self) -> &SpiffeId {
        &self.spiffe_id
    }

    /// The operator-set hint (`""` when none).
    #[must_use]
    pub fn hint(&self) -> &str {
        &self.hint
    }

    /// The `aud` claim.
    #[must_use]
    pub fn audience(&self) -> &[String] {
        &self.audience
    }

    /// The `exp` claim.
    #[must_use]
    pub fn expiry(&self) -> SystemTime {
        self.expiry
    }
}

impl TryFrom<pb::Jwtsvid> for JwtSvid {
    type Error = Error;

    fn try_from(msg: pb::Jwtsvid) -> Result<Self, Error> {
        let spiffe_id: SpiffeId = msg
            .spiffe_id
            .parse()
            .map_err(|e| Error::invalid(format!("JWT-SVID {e}")))?;
        Self::from_token(msg.svid, Some(spiffe_id), msg.hint)
            .map_err(|(id, e)| Error::invalid(format!("JWT-SVID {id}: {e}")))
    }
}

impl JwtSvid {
    /// Reads a JWT-SVID's claims **without checking its signature, expiry or audience**: for
    /// callers that validate the token elsewhere (a gateway in front, the agent's
    /// `ValidateJWTSVID`), or only need to know which ID a token names and when to refresh it.
    /// Never use the result to authenticate anyone; [`crate::JwtValidator`] does that.
    ///
    /// What is checked: a compact JWS of three parts whose claims are a JSON object with no
    /// member named twice; `sub` a SPIFFE ID with a path (JWT-SVID §3.1); `aud` a string or an
    /// array of strings; `exp` a number. The hint is empty.
    ///
    /// # Errors
    /// [`Error::Invalid`] naming the rule; the message never quotes the token.
    pub fn parse_insecure(token: &str) -> Result<Self, Error> {
        Self::from_token(token.to_owned(), None, String::new()).map_err(|(_, reason)| {
            Error::Invalid {
                what: "JWT-SVID",
                reason,
            }
        })
    }

    /// The claims every JWT-SVID constructor reads. `expected`: the ID the agent named (the
    /// `sub` claim must equal it); `None` to take the ID from `sub`.
    fn from_token(
        token: String,
        expected: Option<SpiffeId>,
        hint: String,
    ) -> Result<Self, (String, String)> {
        let named = expected
            .as_ref()
            .map_or_else(|| "token".to_owned(), ToString::to_string);
        let fail = |what: &str| (named.clone(), what.to_owned());
        let claims = decode_claims(&token).map_err(|e| fail(&e))?;
        let expiry = match claims.get("exp") {
            Some(Value::Number(n)) => n
                .as_u64()
                .or_else(|| {
                    n.as_f64()
                        .filter(|f| *f >= 0.0 && f.is_finite())
                        .map(f64_secs)
                })
                .map(|secs| UNIX_EPOCH + Duration::from_secs(secs))
                .ok_or_else(|| fail("exp claim is not a valid time"))?,
            Some(_) => return Err(fail("exp claim is not a number")),
            None => return Err(fail("token has no exp claim")),
        };
        let spiffe_id = match (claims.get("sub"), expected) {
            (Some(Value::String(sub)), Some(id)) if *sub == id.to_string() => id,
            (Some(Value::String(sub)), Some(_)) => {
                return Err(fail(&format!("sub claim {sub:?} differs")));
            }
            (Some(Value::String(sub)), None) => {
                let id: SpiffeId = sub.parse().map_err(|e| fail(&format!("sub claim: {e}")))?;
                if id.path().is_empty() {
                    return Err(fail(&format!(
                        "sub claim {id} has no path: a trust domain ID is not a workload's"
                    )));
                }
                id
            }
            _ => return Err(fail("token has no sub claim")),
        };
        let audience = match claims.get("aud") {
            Some(Value::String(aud)) => vec![aud.clone()],
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| v.as_str().map(str::to_owned))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| fail("aud claim holds a non-string"))?,
            _ => return Err(fail("token has no aud claim")),
        };
        Ok(Self {
            token: JwtToken(token),
            spiffe_id,
            hint,
            audience,
            expiry,
        })
    }
}

#[expect(
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    reason = "the caller checked the value is finite and non-negative; fractions are dropped"
)]
fn f64_secs(f: f64) -> u64 {
    f as u64
}

/// Decodes the payload of a compact JWS into its JSON object, refusing a member name given twice
/// (a `sub` or `exp` that another parser would read differently). Errors never quote the token.
fn decode_claims(token: &str) -> Result<serde_json::Map<String, Value>, String> {
    let mut parts = token.split('.');
    let (Some(_), Some(payload), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err("token is not a compact JWS (three dot-separated parts)".into());
    };
    let bytes = URL_SAFE_NO_PAD
        .decode(payload)
        .or_else(|_| URL_SAFE.decode(payload))
        .map_err(|_| "token payload is not base64url".to_owned())?;
    crate::strict_json::object(&bytes).map_err(|e| match e {
        crate::strict_json::StrictJsonError::Duplicate(name) => {
            format!("token payload names member {name} more than once")
        }
        crate::strict_json::StrictJsonError::NotAnObject => {
            "token payload is not a JSON object".to_owned()
        }
    })
}

/// JWT bundles by trust domain: each JWKS document exactly as received, and its parsed keys.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct JwtBundleSet {
    bundles: BTreeMap<TrustDomain, Vec<u8>>,
    parsed: BundleMap<JwtBundle>,
}

impl JwtBundleSet {
    /// A set from JWKS documents by trust domain.
    ///
    /// # Errors
    /// As [`JwtBundle::from_jwks`].
    pub fn from_jwks(
        documents: impl IntoIterator<Item = (TrustDomain, Vec<u8>)>,
    ) -> Result<Self, Error> {
        let bundles: BTreeMap<_, _> = documents.into_iter().collect();
        let parsed = bundles
            .iter()
            .map(|(td, jwks)| {
                Ok((
                    td.clone(),
                    Arc::new(JwtBundle::from_jwks(td.clone(), jwks)?),
                ))
            })
            .collect::<Result<_, Error>>()?;
        Ok(Self { bundles, parsed })
    }

    /// JWKS JSON by trust domain, own trust domain included, as received.
    #[must_use]
    pub fn bundles(&self) -> &BTreeMap<TrustDomain, Vec<u8>> {
        &self.bundles
    }

    /// The parsed bundle of `trust_domain`.
    #[must_use]
    pub fn get(&self, trust_domain: &TrustDomain) -> Option<&JwtBundle> {
        self.parsed.get(trust_domain).map(AsRef::as_ref)
    }
}

impl BundleSource for JwtBundleSet {
    type Bundle = JwtBundle;

    fn bundle_for(&self, trust_domain: &TrustDomain) -> Option<Arc<JwtBundle>> {
        self.parsed.get(trust_domain).cloned()
    }
}

impl TryFrom<pb::JwtBundlesResponse> for JwtBundleSet {
    type Error = Error;

    fn try_from(msg: pb::JwtBundlesResponse) -> Result<Self, Error> {
        if msg.bundles.is_empty() {
            return Err(Error::EmptyResponse);
        }
        Self::from_jwks(convert_jwks(msg.bundles)?)
    }
}

fn convert_jwks(map: HashMap<String, Vec<u8>>) -> Result<BTreeMap<TrustDomain, Vec<u8>>, Error> {
    map.into_iter()
        .map(|(key, jwks)| {
            let td: TrustDomain = key
                .parse()
                .map_err(|e| Error::invalid(format!("JWT bundle key: {e}")))?;
            // Only the shape is checked: a federated trust domain without JWT authorities may
            // come as `{"keys":null}` or without `keys`; the bytes are passed on as received.
            match serde_json::from_slice::<Value>(&jwks) {
                Ok(Value::Object(doc))
                    if doc.get("keys").is_none_or(|k| k.is_array() || k.is_null()) => {}
                _ => {
                    return Err(Error::invalid(format!(
                        "JWT bundle for {td} is not a JWKS document"
                    )));
                }
            }
            Ok((td, jwks))
        })
        .collect()
}

/// The agent's answer to a successful validation.
#[derive(Clone, Debug, PartialEq)]
pub struct ValidatedJwtSvid {
    /// The SPIFFE ID the token was issued to.
    pub spiffe_id: SpiffeId,
    /// All claims of the token as JSON.
    pub claims: Value,
}

impl TryFrom<pb::ValidateJwtsvidResponse> for ValidatedJwtSvid {
    type Error = Error;

    fn try_from(msg: pb::ValidateJwtsvidResponse) -> Result<Self, Error> {
        let spiffe_id = msg
            .spiffe_id
            .parse()
            .map_err(|e| Error::invalid(format!("validated JWT-SVID {e}")))?;
        let claims = msg.claims.map_or(Value::Null, struct_to_json);
        Ok(Self { spiffe_id, claims })
    }
}

fn struct_to_json(s: prost_types::Struct) -> Value {
    Value::Object(
        s.fields
            .into_iter()
            .map(|(k, v)| (k, value_to_json(v)))
            .collect(),
    )
}

fn value_to_json(v: prost_types::Value) -> Value {
    use prost_types::value::Kind;
    match v.kind {
        None | Some(Kind::NullValue(_)) => Value::Null,
        Some(Kind::BoolValue(b)) => Value::Bool(b),
        // protobuf Struct numbers are doubles; keep integers integral (exp, iat) when exact.
        Some(Kind::NumberValue(n)) => number_to_json(n),
        Some(Kind::StringValue(s)) => Value::String(s),
        Some(Kind::ListValue(list)) => {
            Value::Array(list.values.into_iter().map(value_to_json).collect())
        }
        Some(Kind::StructValue(s)) => struct_to_json(s),
    }
}

#[expect(
    clippy::cast_possible_truncation,
    reason = "only integral values within the exactly representable range are converted"
)]
fn number_to_json(n: f64) -> Value {
    const EXACT: f64 = 9_007_199_254_740_992.0; // 2^53
    if n.fract() == 0.0 && n.abs() < EXACT {
        Value::from(n as i64)
    } else {
        serde_json::Number::from_f64(n).map_or(Value::Null, Value::Number)
    }
}

#[cfg(test)]
mod tests;
