//! etcd's `jwt` tokens (`--auth-token jwt,pub-key=...,priv-key=...,sign-method=...,ttl=...`):
//! a token is signed claims (`username`, `revision`, `exp`), which any member checks
//! with the public key alone; nothing is registered, and a restart forgets nothing.
//! Unlike a `simple` token, one carries the auth revision it was given at, so a change
//! of users or roles since refuses it (`revision of auth store is old`) as etcd's does.

use std::time::Duration;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};

use crate::{AuthError, Caller};

/// etcd's default `ttl` option.
pub const DEFAULT_TTL: Duration = Duration::from_secs(300);

#[derive(serde::Serialize, serde::Deserialize)]
struct Claims {
    username: String,
    revision: u64,
    exp: i64,
}

/// A configured `jwt` token provider.
pub struct JwtTokens {
    algorithm: Algorithm,
    /// `None`: verify-only (no `priv-key`), as etcd allows; logins are then refused.
    signing: Option<EncodingKey>,
    verifying: DecodingKey,
    ttl: Duration,
}

impl std::fmt::Debug for JwtTokens {
    // Never the keys.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtTokens")
            .field("algorithm", &self.algorithm)
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

/// What `--auth-token jwt,...`'s options name.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct JwtOptions {
    pub pub_key: Option<String>,
    pub priv_key: Option<String>,
    pub sign_method: String,
    pub ttl: Option<Duration>,
}

/// Splits `--auth-token`'s value: `simple`, or `jwt` and its options. Unknown options
/// and a bad `ttl` are refused, as etcd refuses them.
pub fn parse_options(
    value: &str,
    parse_ttl: impl Fn(&str) -> Option<Duration>,
) -> Result<Option<JwtOptions>, String> {
    let mut parts = value.split(',');
    match parts.next().unwrap_or_default() {
        "simple" => return Ok(None),
        "jwt" => {}
        other => return Err(format!("unknown token type: {other}")),
    }
    let mut opts = JwtOptions::default();
    for part in parts {
        let (key, val) = part
            .split_once('=')
            .ok_or_else(|| format!("invalid auth token option: {part}"))?;
        match key {
            "pub-key" => opts.pub_key = Some(val.to_string()),
            "priv-key" => opts.priv_key = Some(val.to_string()),
            "sign-method" => opts.sign_method = val.to_string(),
            "ttl" => opts.ttl = Some(parse_ttl(val).ok_or_else(|| format!("invalid ttl: {val}"))?),
            _ => return Err(format!("invalid auth token option: {key}")),
        }
    }
    Ok(Some(opts))
}

impl JwtTokens {
    /// The provider `opts` describe, its key files read (`read`) and parsed.
    pub fn new(
        opts: &JwtOptions,
        read: impl Fn(&str) -> std::io::Result<Vec<u8>>,
    ) -> Result<JwtTokens, String> {
        let algorithm: Algorithm = opts
            .sign_method
            .parse()
            .map_err(|_| format!("invalid JWT sign method: {:?}", opts.sign_method))?;
        let file = |path: &Option<String>, what: &str| -> Result<Option<Vec<u8>>, String> {
            path.as_deref()
                .map(|p| read(p).map_err(|e| format!("reading the JWT {what} {p}: {e}")))
                .transpose()
        };
        let private = file(&opts.priv_key, "private key")?;
        let public = file(&opts.pub_key, "public key")?;
        let bad = |what: &str, e: jsonwebtoken::errors::Error| format!("the JWT {what}: {e}");
        let (signing, verifying) = match algorithm {
            Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 => {
                // etcd's HMAC key is the private key file's bytes.
                let secret = private.ok_or("a JWT HMAC method needs priv-key")?;
                (
                    Some(EncodingKey::from_secret(&secret)),
                    DecodingKey::from_secret(&secret),
                )
            }
            Algorithm::ES256 | Algorithm::ES384 => {
                let public = public.ok_or("a JWT ECDSA method needs pub-key")?;
                let signing = private
                    .map(|k| EncodingKey::from_ec_pem(&k).map_err(|e| bad("private key", e)))
                    .transpose()?;
                let verifying =
                    DecodingKey::from_ec_pem(&public).map_err(|e| bad("public key", e))?;
                (signing, verifying)
            }
            Algorithm::EdDSA => return Err("etcd 3.4 has no EdDSA JWT method".into()),
            _ => {
                let public = public.ok_or("a JWT RSA method needs pub-key")?;
                let signing = private
                    .map(|k| EncodingKey::from_rsa_pem(&k).map_err(|e| bad("private key", e)))
                    .transpose()?;
                let verifying =
                    DecodingKey::from_rsa_pem(&public).map_err(|e| bad("public key", e))?;
                (signing, verifying)
            }
        };
        Ok(JwtTokens {
            algorithm,
            signing,
            verifying,
            ttl: opts.ttl.unwrap_or(DEFAULT_TTL),
        })
    }

    /// A token for `username` at auth `revision`, expiring `ttl` after `now_s` (Unix
    /// seconds).
    pub fn sign(&self, username: &str, revision: u64, now_s: i64) -> Result<String, AuthError> {
        let key = self.signing.as_ref().ok_or(AuthError::VerifyOnly)?;
        let claims = Claims {
            username: username.to_string(),
            revision,
            exp: now_s.saturating_add(self.ttl.as_secs() as i64),
        };
        jsonwebtoken::encode(&Header::new(self.algorithm), &claims, key)
            .map_err(|_| AuthError::VerifyOnly)
    }

    /// The caller `token` names, if its signature and method are this provider's and it
    /// has not expired at `now_s`.
    pub fn caller(&self, token: &str, now_s: i64) -> Option<Caller> {
        let mut validation = Validation::new(self.algorithm);
        validation.leeway = 0;
        validation.validate_exp = false;
        let data = jsonwebtoken::decode::<Claims>(token, &self.verifying, &validation).ok()?;
        if data.claims.exp <= now_s {
            return None;
        }
        Some(Caller {
            username: data.claims.username,
            revision: data.claims.revision,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hmac() -> JwtTokens {
        let opts = parse_options("jwt,priv-key=k,sign-method=HS256,ttl=10s", |s| {
            s.strip_suffix('s')?.parse().ok().map(Duration::from_secs)
        })
        .unwrap()
        .unwrap();
        JwtTokens::new(&opts, |_| Ok(b"secret".to_vec())).unwrap()
    }

    #[test]
    fn a_token_names_its_user_and_revision_until_it_expires() {
        let tokens = hmac();
        let token = tokens.sign("alice", 7, 1_000).unwrap();
        let caller = tokens.caller(&token, 1_005).unwrap();
        assert_eq!((caller.username.as_str(), caller.revision), ("alice", 7));
        assert!(tokens.caller(&token, 1_010).is_none());
        assert!(tokens.caller("a.b.c", 1_005).is_none());
        let mut forged = token.clone();
        forged.pop();
        assert!(tokens.caller(&forged, 1_005).is_none());
    }

    #[test]
    fn options_are_etcds() {
        let ttl = |_: &str| Some(Duration::from_secs(1));
        assert_eq!(parse_options("simple", ttl), Ok(None));
        assert!(parse_options("jwt,color=red", ttl).is_err());
        assert!(parse_options("paseto", ttl).is_err());
        let opts = parse_options("jwt,pub-key=a,priv-key=b,sign-method=RS256", ttl)
            .unwrap()
            .unwrap();
        assert_eq!(opts.pub_key.as_deref(), Some("a"));
        assert_eq!(opts.ttl, None);
        assert!(JwtTokens::new(&opts, |_| Ok(b"not a key".to_vec())).is_err());
    }
}
