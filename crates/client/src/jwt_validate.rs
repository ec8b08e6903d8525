//! Offline JWT-SVID validation against JWT bundles (SPIFFE JWT-SVID spec §3-§4), with the
//! checks and the order of SPIRE's `ValidateJWTSVID` and go-spiffe's `jwtsvid.ParseAndValidate`:
//! algorithm in the JWT-SVID set, `typ` JWT/JOSE if present, `kid` present, `sub` a SPIFFE ID,
//! key found by `kid` in the bundle of the subject's trust domain, signature, then `exp`
//! (required), `nbf`/`iat`, and `aud` containing the expected audience, with go-jose's default
//! leeway of one minute. Signatures are checked by `ring`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::signature::{self, RsaPublicKeyComponents, UnparsedPublicKey};
use serde_json::{Map, Value};

use crate::bundle::{BundleSource, JwtBundle, JwtKeyMaterial};
use crate::strict_json::{self, StrictJsonError};
use crate::{SpiffeId, TrustDomain, ValidatedJwtSvid};

/// Clock skew tolerated on `exp`, `nbf` and `iat`: go-jose's `DefaultLeeway`, which SPIRE and
/// go-spiffe use, so that all three agree on a token near its expiry.
pub const DEFAULT_LEEWAY: Duration = Duration::from_secs(60);

/// Why a JWT-SVID is rejected. Messages never quote the token.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JwtSvidError {
    /// Not a compact JWS with a JSON header and payload.
    #[error("malformed JWT-SVID: {reason}")]
    Malformed {
        /// What does not parse.
        reason: &'static str,
    },
    /// `alg` is not one of the JWT-SVID algorithms (`none` and HMAC included).
    #[error("JWT-SVID algorithm {alg:?} is not allowed")]
    UnsupportedAlgorithm {
        /// The header's `alg`.
        alg: String,
    },
    /// `typ` is present but neither `JWT` nor `JOSE`.
    #[error("JWT-SVID header typ {typ:?} is neither JWT nor JOSE")]
    BadType {
        /// The header's `typ`.
        typ: String,
    },
    /// The header has no `kid`.
    #[error("JWT-SVID header has no key ID")]
    MissingKeyId,
    /// The header holds a member other than `alg`, `kid` and `typ` (JWT-SVID §2: any other
    /// header "MUST NOT be included"; `crit`, `b64`, `x5c`, `jku`, ... change what a JWS means).
    #[error("JWT-SVID header member {name:?} is not allowed (only alg, kid and typ)")]
    UnexpectedHeader {
        /// The member's name.
        name: String,
    },
    /// The header or the claims name one member twice, at any depth: parsers disagree on
    /// which one counts, so neither does.
    #[error("JWT-SVID {part} names member {name} more than once")]
    DuplicateMember {
        /// `header` or `claims`.
        part: &'static str,
        /// The repeated name, JSON-quoted.
        name: String,
    },
    /// A required claim is missing or has the wrong JSON type.
    #[error("JWT-SVID claim {claim} is missing or invalid")]
    InvalidClaim {
        /// `sub`, `exp`, `aud`, `nbf` or `iat`.
        claim: &'static str,
    },
    /// `sub` is not a SPIFFE ID.
    #[error("JWT-SVID subject is not a SPIFFE ID: {0}")]
    InvalidSubject(#[from] crate::SpiffeIdError),
    /// No JWT bundle for the subject's trust domain.
    #[error("no JWT bundle for trust domain {0}")]
    NoBundle(TrustDomain),
    /// The bundle has no key with this `kid`.
    #[error("no JWT authority with key ID {key_id:?} in the bundle of {trust_domain}")]
    UnknownKeyId {
        /// The header's `kid`.
        key_id: String,
        /// The subject's trust domain.
        trust_domain: TrustDomain,
    },
    /// The bundle has two or more keys with this `kid`: which one signs is ambiguous, so none
    /// is used (RFC 7517 §4.5: the `kid` is how a key is chosen).
    #[error("the bundle of {trust_domain} has more than one JWT authority with key ID {key_id:?}")]
    AmbiguousKeyId {
        /// The header's `kid`.
        key_id: String,
        /// The subject's trust domain.
        trust_domain: TrustDomain,
    },
    /// The key named by `kid` cannot check this algorithm (an RSA key for ES256, or an EC key
    /// on another curve than the algorithm's).
    #[error("key {key_id:?} cannot verify {alg}")]
    KeyMismatch {
        /// The header's `kid`.
        key_id: String,
        /// The header's `alg`.
        alg: String,
    },
    /// The signature does not verify.
    #[error("JWT-SVID signature is invalid")]
    BadSignature,
    /// `exp` is in the past (beyond the leeway).
    #[error("JWT-SVID has expired")]
    Expired,
    /// `nbf` or `iat` is in the future (beyond the leeway).
    #[error("JWT-SVID is not valid yet")]
    NotYetValid,
    /// `aud` does not contain the expected audience.
    #[error("JWT-SVID audience {actual:?} does not contain {expected:?}")]
    AudienceMismatch {
        /// The audience asked for.
        expected: String,
        /// The token's `aud`.
        actual: Vec<String>,
    },
}

/// Validates JWT-SVIDs offline. [`Default`] uses [`DEFAULT_LEEWAY`].
#[derive(Clone, Copy, Debug)]
pub struct JwtValidator {
    leeway: Duration,
}

impl Default for JwtValidator {
    fn default() -> Self {
        Self {
            leeway: DEFAULT_LEEWAY,
        }
    }
}

impl JwtValidator {
    /// Sets the clock skew tolerated on `exp`, `nbf` and `iat`.
    #[must_use]
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway;
        self
    }

    /// Validates `token` for `audience` against `bundles` at the current time.
    ///
    /// # Errors
    /// A [`JwtSvidError`] naming the first check that fails.
    pub fn validate(
        &self,
        token: &str,
        bundles: &dyn BundleSource<Bundle = JwtBundle>,
        audience: &str,
    ) -> Result<ValidatedJwtSvid, JwtSvidError> {
        self.validate_at(token, bundles, audience, SystemTime::now())
    }

    /// [`Self::validate`] at `now`.
    ///
    /// # Errors
    /// As [`Self::validate`].
    pub fn validate_at(
        &self,
        token: &str,
        bundles: &dyn BundleSource<Bundle = JwtBundle>,
        audience: &str,
        now: SystemTime,
    ) -> Result<ValidatedJwtSvid, JwtSvidError> {
        let parts = Parts::split(token)?;
        let header = parts.header()?;
        if let Some(name) = header
            .keys()
            .find(|name| !matches!(name.as_str(), "alg" | "kid" | "typ"))
        {
            return Err(JwtSvidError::UnexpectedHeader { name: name.clone() });
        }
        let alg = text(&header, "alg").unwrap_or_default().to_owned();
        let Some(verify) = Algorithm::from_name(&alg) else {
            return Err(JwtSvidError::UnsupportedAlgorithm { alg });
        };
        if let Some(typ) = header.get("typ")
            && !matches!(typ.as_str(), Some("JWT" | "JOSE"))
        {
            return Err(JwtSvidError::BadType {
                typ: typ.as_str().unwrap_or_default().to_owned(),
            });
        }
        let key_id = text(&header, "kid")
            .filter(|k| !k.is_empty())
            .ok_or(JwtSvidError::MissingKeyId)?
            .to_owned();
        let claims = parts.claims()?;
        let sub = text(&claims, "sub").ok_or(JwtSvidError::InvalidClaim { claim: "sub" })?;
        let exp = number(&claims, "exp")?.ok_or(JwtSvidError::InvalidClaim { claim: "exp" })?;
        let spiffe_id: SpiffeId = sub.parse()?;
        let td = spiffe_id.trust_domain();
        let bundle = bundles
            .bundle_for(td)
            .ok_or_else(|| JwtSvidError::NoBundle(td.clone()))?;
        if bundle.is_ambiguous(&key_id) {
            return Err(JwtSvidError::AmbiguousKeyId {
                key_id,
                trust_domain: td.clone(),
            });
        }
        let key = bundle
            .key(&key_id)
            .ok_or_else(|| JwtSvidError::UnknownKeyId {
                key_id: key_id.clone(),
                trust_domain: td.clone(),
            })?;
        verify
            .check(key.material(), parts.signed, &parts.signature()?)
            .map_err(|e| match e {
                CheckError::Mismatch => JwtSvidError::KeyMismatch { key_id, alg },
                CheckError::Signature => JwtSvidError::BadSignature,
            })?;
        self.check_times(&claims, exp, now)?;
        let actual = audiences(&claims)?;
        if !actual.iter().any(|a| a == audience) {
            return Err(JwtSvidError::AudienceMismatch {
                expected: audience.to_owned(),
                actual,
            });
        }
        Ok(ValidatedJwtSvid {
            spiffe_id,
            claims: Value::Object(claims),
        })
    }

    fn check_times(
        &self,
        claims: &Map<String, Value>,
        exp: f64,
        now: SystemTime,
    ) -> Result<(), JwtSvidError> {
        let now = now
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs_f64();
        let leeway = self.leeway.as_secs_f64();
        if now > exp + leeway {
            return Err(JwtSvidError::Expired);
        }
        for claim in ["nbf", "iat"] {
            if let Some(at) = number(claims, claim)?
                && at > now + leeway
            {
                return Err(JwtSvidError::NotYetValid);
            }
        }
        Ok(())
    }
}

/// Validates `token` for `audience` with the default [`JwtValidator`].
///
/// # Errors
/// As [`JwtValidator::validate`].
pub fn validate_jwt_svid(
    token: &str,
    bundles: &dyn BundleSource<Bundle = JwtBundle>,
    audience: &str,
) -> Result<ValidatedJwtSvid, JwtSvidError> {
    JwtValidator::default().validate(token, bundles, audience)
}

struct Parts<'a> {
    header: &'a str,
    payload: &'a str,
    signature: &'a str,
    /// `header.payload`, the signing input.
    signed: &'a [u8],
}

impl<'a> Parts<'a> {
    fn split(token: &'a str) -> Result<Self, JwtSvidError> {
        let malformed = JwtSvidError::Malformed {
            reason: "not a compact JWS (three dot-separated parts)",
        };
        let mut parts = token.split('.');
        let (Some(header), Some(payload), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(malformed);
        };
        let signed = &token.as_bytes()[..header.len() + 1 + payload.len()];
        Ok(Self {
            header,
            payload,
            signature,
            signed,
        })
    }

    fn header(&self) -> Result<Map<String, Value>, JwtSvidError> {
        json_object(self.header, "header", "header is not base64url JSON")
    }

    fn claims(&self) -> Result<Map<String, Value>, JwtSvidError> {
        json_object(self.payload, "claims", "payload is not base64url JSON")
    }

    fn signature(&self) -> Result<Vec<u8>, JwtSvidError> {
        URL_SAFE_NO_PAD
            .decode(self.signature)
            .map_err(|_| JwtSvidError::Malformed {
                reason: "signature is not base64url",
            })
    }
}

fn json_object(
    text: &str,
    part: &'static str,
    reason: &'static str,
) -> Result<Map<String, Value>, JwtSvidError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(text)
        .map_err(|_| JwtSvidError::Malformed { reason })?;
    strict_json::object(&bytes).map_err(|e| match e {
        StrictJsonError::Duplicate(name) => JwtSvidError::DuplicateMember { part, name },
        StrictJsonError::NotAnObject => JwtSvidError::Malformed { reason },
    })
}

fn text<'a>(map: &'a Map<String, Value>, name: &str) -> Option<&'a str> {
    map.get(name).and_then(Value::as_str)
}

/// A `NumericDate` claim: `Ok(None)` when absent, an error when not a number.
fn number(map: &Map<String, Value>, claim: &'static str) -> Result<Option<f64>, JwtSvidError> {
    match map.get(claim) {
        None => Ok(None),
        Some(Value::Number(n)) => n
            .as_f64()
            .map(Some)
            .ok_or(JwtSvidError::InvalidClaim { claim }),
        Some(_) => Err(JwtSvidError::InvalidClaim { claim }),
    }
}

fn audiences(claims: &Map<String, Value>) -> Result<Vec<String>, JwtSvidError> {
    let invalid = JwtSvidError::InvalidClaim { claim: "aud" };
    match claims.get("aud") {
        Some(Value::String(aud)) => Ok(vec![aud.clone()]),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| v.as_str().map(str::to_owned))
            .collect::<Option<Vec<_>>>()
            .ok_or(invalid),
        _ => Err(invalid),
    }
}

enum CheckError {
    Mismatch,
    Signature,
}

/// The JWT-SVID algorithm set (JWT-SVID §2.1, RFC 7518 §3.3-§3.5). ES512 is checked by the
/// `RustCrypto` `p521` crate, since `ring` has no P-521; everything else by `ring`.
enum Algorithm {
    Ec(&'static str, &'static signature::EcdsaVerificationAlgorithm),
    Ec521,
    Rsa(&'static signature::RsaParameters),
}

impl Algorithm {
    fn from_name(alg: &str) -> Option<Self> {
        Some(match alg {
            "ES256" => Self::Ec("P-256", &signature::ECDSA_P256_SHA256_FIXED),
            "ES384" => Self::Ec("P-384", &signature::ECDSA_P384_SHA384_FIXED),
            "ES512" => Self::Ec521,
            "RS256" => Self::Rsa(&signature::RSA_PKCS1_2048_8192_SHA256),
            "RS384" => Self::Rsa(&signature::RSA_PKCS1_2048_8192_SHA384),
            "RS512" => Self::Rsa(&signature::RSA_PKCS1_2048_8192_SHA512),
            "PS256" => Self::Rsa(&signature::RSA_PSS_2048_8192_SHA256),
            "PS384" => Self::Rsa(&signature::RSA_PSS_2048_8192_SHA384),
            "PS512" => Self::Rsa(&signature::RSA_PSS_2048_8192_SHA512),
            _ => return None,
        })
    }

    fn check(&self, key: &JwtKeyMaterial, signed: &[u8], sig: &[u8]) -> Result<(), CheckError> {
        let result = match (self, key) {
            (Self::Ec(curve, alg), JwtKeyMaterial::Ec { curve: c, point }) if c == curve => {
                UnparsedPublicKey::new(*alg, point).verify(signed, sig)
            }
            (Self::Ec521, JwtKeyMaterial::Ec { curve, point }) if curve == "P-521" => {
                return verify_es512(point, signed, sig);
            }
            (Self::Rsa(params), JwtKeyMaterial::Rsa { modulus, exponent }) => {
                RsaPublicKeyComponents {
                    n: modulus,
                    e: exponent,
                }
                .verify(params, signed, sig)
            }
            _ => return Err(CheckError::Mismatch),
        };
        result.map_err(|_| CheckError::Signature)
    }
}

/// ES512 (RFC 7518 §3.4): ECDSA on P-521 with SHA-512, the signature `R || S` of 66 bytes each.
fn verify_es512(point: &[u8], signed: &[u8], sig: &[u8]) -> Result<(), CheckError> {
    use p521::ecdsa::signature::Verifier as _;
    let key =
        p521::ecdsa::VerifyingKey::from_sec1_bytes(point).map_err(|_| CheckError::Mismatch)?;
    let sig = p521::ecdsa::Signature::from_slice(sig).map_err(|_| CheckError::Signature)?;
    key.verify(signed, &sig).map_err(|_| CheckError::Signature)
}

#[cfg(test)]
mod tests;
