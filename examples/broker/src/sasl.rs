//! SASL authentication (Kafka's SaslHandshake v1 + SaslAuthenticate): PLAIN and
//! SCRAM-SHA-256/512 (RFC 5802, RFC 7677), against credentials kept salted and hashed.
//!
//! Users come from the config file's `[sasl.users]` (name = password, as Kafka's JAAS
//! config lists PLAIN users). On start the broker turns each into SCRAM credentials — a
//! random salt, 4096 iterations, StoredKey and ServerKey per mechanism — and writes those
//! to `sasl-credentials` in the data directory (tmp, fsync, rename): never a password.
//! Authentication uses only the stored credentials: PLAIN by deriving the StoredKey from
//! the password it is given and comparing in constant time.

use std::collections::BTreeMap;
use std::num::NonZeroU32;
use std::path::Path;

use anyhow::Context;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use ring::rand::{SecureRandom, SystemRandom};
use ring::{digest, hmac, pbkdf2};
use serde::{Deserialize, Serialize};

use crate::durable_file;

/// The file of salted, hashed credentials in the data directory.
pub const CREDENTIALS_FILE: &str = "sasl-credentials";

/// Kafka's minimum SCRAM iteration count, which it also uses by default.
const ITERATIONS: u32 = 4096;

/// The `[sasl]` section of the config file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SaslConfig {
    /// Enabled mechanisms (`PLAIN`, `SCRAM-SHA-256`, `SCRAM-SHA-512`); all three by default.
    #[serde(default = "all_mechanisms")]
    pub mechanisms: Vec<String>,
    /// Users and their passwords (hashed into the data directory on start).
    #[serde(default)]
    pub users: BTreeMap<String, String>,
}

fn all_mechanisms() -> Vec<String> {
    vec![
        "PLAIN".into(),
        "SCRAM-SHA-256".into(),
        "SCRAM-SHA-512".into(),
    ]
}

/// A SCRAM hash function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Hash {
    Sha256,
    Sha512,
}

impl Hash {
    fn of(mechanism: &str) -> Option<Hash> {
        match mechanism {
            "SCRAM-SHA-256" => Some(Hash::Sha256),
            "SCRAM-SHA-512" => Some(Hash::Sha512),
            _ => None,
        }
    }
    fn pbkdf2(self) -> pbkdf2::Algorithm {
        match self {
            Hash::Sha256 => pbkdf2::PBKDF2_HMAC_SHA256,
            Hash::Sha512 => pbkdf2::PBKDF2_HMAC_SHA512,
        }
    }
    fn hmac(self) -> hmac::Algorithm {
        match self {
            Hash::Sha256 => hmac::HMAC_SHA256,
            Hash::Sha512 => hmac::HMAC_SHA512,
        }
    }
    fn digest(self) -> &'static digest::Algorithm {
        match self {
            Hash::Sha256 => &digest::SHA256,
            Hash::Sha512 => &digest::SHA512,
        }
    }
    fn len(self) -> usize {
        self.digest().output_len()
    }
    fn mac(self, key: &[u8], data: &[u8]) -> Vec<u8> {
        hmac::sign(&hmac::Key::new(self.hmac(), key), data)
            .as_ref()
            .to_vec()
    }
    fn h(self, data: &[u8]) -> Vec<u8> {
        digest::digest(self.digest(), data).as_ref().to_vec()
    }
}

/// One user's SCRAM credential for one hash (RFC 5802 §3), as stored.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
struct ScramCredential {
    salt: String,
    iterations: u32,
    stored_key: String,
    server_key: String,
}

impl ScramCredential {
    fn new(hash: Hash, password: &str, rng: &SystemRandom) -> anyhow::Result<Self> {
        let mut salt = [0u8; 16];
        rng.fill(&mut salt)
            .map_err(|_| anyhow::anyhow!("no randomness for a salt"))?;
        let (stored, server) = keys(hash, password, &salt, ITERATIONS)?;
        Ok(ScramCredential {
            salt: B64.encode(salt),
            iterations: ITERATIONS,
            stored_key: B64.encode(stored),
            server_key: B64.encode(server),
        })
    }
}

/// (StoredKey, ServerKey) of a password.
fn keys(
    hash: Hash,
    password: &str,
    salt: &[u8],
    iterations: u32,
) -> anyhow::Result<(Vec<u8>, Vec<u8>)> {
    let iterations = NonZeroU32::new(iterations).context("zero iterations")?;
    let mut salted = vec![0u8; hash.len()];
    pbkdf2::derive(
        hash.pbkdf2(),
        iterations,
        salt,
        password.as_bytes(),
        &mut salted,
    );
    let client_key = hash.mac(&salted, b"Client Key");
    Ok((hash.h(&client_key), hash.mac(&salted, b"Server Key")))
}

fn equal(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Every user's credentials, by mechanism.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Credentials {
    #[serde(default)]
    sha256: BTreeMap<String, ScramCredential>,
    #[serde(default)]
    sha512: BTreeMap<String, ScramCredential>,
}

impl Credentials {
    /// Loads the stored credentials, adds (or re-salts) the configured users whose password
    /// does not match what is stored, drops users no longer configured, and writes the file
    /// back durably when it changed.
    pub fn sync(data_dir: &Path, users: &BTreeMap<String, String>) -> anyhow::Result<Self> {
        let path = data_dir.join(CREDENTIALS_FILE);
        let mut creds: Credentials = match std::fs::read_to_string(&path) {
            Ok(text) => {
                toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Credentials::default(),
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        let rng = SystemRandom::new();
        let mut changed = false;
        for (hash, map) in [
            (Hash::Sha256, &mut creds.sha256),
            (Hash::Sha512, &mut creds.sha512),
        ] {
            let before = map.len();
            map.retain(|user, _| users.contains_key(user));
            changed |= map.len() != before;
            for (user, password) in users {
                let current = map
                    .get(user)
                    .is_some_and(|c| verify_plain(hash, c, password));
                if !current {
                    map.insert(user.clone(), ScramCredential::new(hash, password, &rng)?);
                    changed = true;
                }
            }
        }
        if changed {
            durable_file::write(&path, &toml::to_string(&creds)?)
                .with_context(|| format!("writing {}", path.display()))?;
        }
        Ok(creds)
    }

    fn get(&self, hash: Hash, user: &str) -> Option<&ScramCredential> {
        match hash {
            Hash::Sha256 => self.sha256.get(user),
            Hash::Sha512 => self.sha512.get(user),
        }
    }
}

fn verify_plain(hash: Hash, c: &ScramCredential, password: &str) -> bool {
    let (Ok(salt), Ok(stored)) = (B64.decode(&c.salt), B64.decode(&c.stored_key)) else {
        return false;
    };
    keys(hash, password, &salt, c.iterations).is_ok_and(|(s, _)| equal(&s, &stored))
}

/// Where one connection's authentication is.
#[derive(Debug)]
pub enum Exchange {
    /// SaslHandshake chose PLAIN.
    Plain,
    /// SaslHandshake chose SCRAM; no message yet.
    ScramStart(HashKind),
    /// SCRAM: the server-first message was sent.
    ScramSent {
        /// The hash.
        hash: HashKind,
        /// The user.
        user: String,
        /// The full nonce (client's and ours).
        nonce: String,
        /// client-first-message-bare "," server-first-message.
        auth_prefix: String,
    },
}

/// A SCRAM hash, opaque outside this module.
#[derive(Debug, Clone, Copy)]
pub struct HashKind(Hash);

/// What a SaslAuthenticate step produced.
#[derive(Debug)]
pub enum Step {
    /// Send these bytes and wait for the next message.
    Continue(Exchange, Vec<u8>),
    /// Authenticated as this user; send these (final) bytes.
    Done(String, Vec<u8>),
    /// Refused, with a message for the client.
    Failed(String),
}

/// Starts an exchange after SaslHandshake named `mechanism`; `None` when it is not
/// enabled.
pub fn start(config: &SaslConfig, mechanism: &str) -> Option<Exchange> {
    if !config.mechanisms.iter().any(|m| m == mechanism) {
        return None;
    }
    match mechanism {
        "PLAIN" => Some(Exchange::Plain),
        m => Hash::of(m).map(|h| Exchange::ScramStart(HashKind(h))),
    }
}

/// One SaslAuthenticate message.
pub fn step(creds: &Credentials, exchange: Exchange, message: &[u8]) -> Step {
    let fail = |why: &str| Step::Failed(why.to_string());
    let Ok(text) = std::str::from_utf8(message) else {
        return fail("malformed SASL message");
    };
    match exchange {
        Exchange::Plain => {
            // authzid NUL authcid NUL password
            let mut parts = text.split('\0');
            let (Some(authzid), Some(user), Some(password), None) =
                (parts.next(), parts.next(), parts.next(), parts.next())
            else {
                return fail("malformed PLAIN message");
            };
            if !authzid.is_empty() && authzid != user {
                return fail("authorization id differs from the user");
            }
            // Checked against the stored SHA-512 credential: no password is kept.
            match creds.get(Hash::Sha512, user) {
                Some(c) if verify_plain(Hash::Sha512, c, password) => {
                    Step::Done(user.to_string(), Vec::new())
                }
                _ => fail("Authentication failed: Invalid username or password"),
            }
        }
        Exchange::ScramStart(HashKind(hash)) => {
            // gs2-header ("n,," or "n,a=authzid,") then client-first-message-bare.
            let Some(bare) = text
                .strip_prefix("n,")
                .and_then(|rest| rest.split_once(',').map(|(_, bare)| bare))
            else {
                return fail(
                    "malformed SCRAM client-first message (channel binding is not supported)",
                );
            };
            let mut user = None;
            let mut client_nonce = None;
            for attr in bare.split(',') {
                if let Some(v) = attr.strip_prefix("n=") {
                    user = Some(v.replace("=2C", ",").replace("=3D", "="));
                } else if let Some(v) = attr.strip_prefix("r=") {
                    client_nonce = Some(v.to_string());
                }
            }
            let (Some(user), Some(client_nonce)) = (user, client_nonce) else {
                return fail("malformed SCRAM client-first message");
            };
            let Some(c) = creds.get(hash, &user) else {
                return fail("Authentication failed: Invalid user credentials");
            };
            let mut ours = [0u8; 18];
            if SystemRandom::new().fill(&mut ours).is_err() {
                return fail("no randomness for a nonce");
            }
            let nonce = format!("{client_nonce}{}", B64.encode(ours));
            let server_first = format!("r={nonce},s={},i={}", c.salt, c.iterations);
            Step::Continue(
                Exchange::ScramSent {
                    hash: HashKind(hash),
                    user,
                    nonce,
                    auth_prefix: format!("{bare},{server_first}"),
                },
                server_first.into_bytes(),
            )
        }
        Exchange::ScramSent {
            hash: HashKind(hash),
            user,
            nonce,
            auth_prefix,
        } => {
            let Some((without_proof, proof)) = text.rsplit_once(",p=") else {
                return fail("malformed SCRAM client-final message");
            };
            if !without_proof
                .split(',')
                .any(|a| a.strip_prefix("r=") == Some(nonce.as_str()))
            {
                return fail("SCRAM nonce mismatch");
            }
            let (Some(c), Ok(proof)) = (creds.get(hash, &user), B64.decode(proof)) else {
                return fail("Authentication failed: Invalid user credentials");
            };
            let (Ok(stored), Ok(server_key)) =
                (B64.decode(&c.stored_key), B64.decode(&c.server_key))
            else {
                return fail("Authentication failed: Invalid user credentials");
            };
            let auth_message = format!("{auth_prefix},{without_proof}");
            let signature = hash.mac(&stored, auth_message.as_bytes());
            if proof.len() != signature.len() {
                return fail("Authentication failed: Invalid user credentials");
            }
            let client_key: Vec<u8> = proof.iter().zip(&signature).map(|(p, s)| p ^ s).collect();
            if !equal(&hash.h(&client_key), &stored) {
                return fail("Authentication failed: Invalid user credentials");
            }
            let server_signature = hash.mac(&server_key, auth_message.as_bytes());
            Step::Done(
                user,
                format!("v={}", B64.encode(server_signature)).into_bytes(),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7677's SCRAM-SHA-256 example, computed with our key derivation.
    #[test]
    fn scram_sha_256_keys_match_rfc_7677() {
        let salt = B64.decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
        let (stored, server) = keys(Hash::Sha256, "pencil", &salt, 4096).unwrap();
        // ServerSignature of the RFC's exchange, from these keys.
        let auth = "n=user,r=rOprNGfwEbeRWgbNEkqO,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096,c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
        let sig = Hash::Sha256.mac(&server, auth.as_bytes());
        assert_eq!(
            B64.encode(sig),
            "6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
        );
        let client_sig = Hash::Sha256.mac(&stored, auth.as_bytes());
        let proof = B64
            .decode("dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=")
            .unwrap();
        let client_key: Vec<u8> = proof.iter().zip(&client_sig).map(|(p, s)| p ^ s).collect();
        assert_eq!(Hash::Sha256.h(&client_key), stored);
    }

    #[test]
    fn stored_credentials_hold_no_password_and_survive_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let users: BTreeMap<String, String> =
            [("alice".to_string(), "alice-secret".to_string())].into();
        let creds = Credentials::sync(dir.path(), &users).unwrap();
        let text = std::fs::read_to_string(dir.path().join(CREDENTIALS_FILE)).unwrap();
        assert!(!text.contains("alice-secret"));
        // Same password: the stored salt is kept.
        Credentials::sync(dir.path(), &users).unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.path().join(CREDENTIALS_FILE)).unwrap(),
            text
        );
        let good = step(&creds, Exchange::Plain, b"\0alice\0alice-secret");
        assert!(
            matches!(good, Step::Done(ref u, _) if u == "alice"),
            "{good:?}"
        );
        assert!(matches!(
            step(&creds, Exchange::Plain, b"\0alice\0wrong"),
            Step::Failed(_)
        ));
        assert!(matches!(
            step(&creds, Exchange::Plain, b"\0bob\0alice-secret"),
            Step::Failed(_)
        ));
        assert!(matches!(
            step(&creds, Exchange::Plain, b"garbage"),
            Step::Failed(_)
        ));
        assert!(matches!(
            step(&creds, Exchange::Plain, &[0xff, 0, 1]),
            Step::Failed(_)
        ));
    }
}

/// One connection's SASL state.
#[derive(Debug)]
pub struct Session {
    /// Whether the listener requires SASL.
    required: bool,
    /// The authenticated user.
    principal: Option<String>,
    /// An exchange in progress.
    exchange: Option<Exchange>,
}

/// Kafka's error codes for SASL.
const UNSUPPORTED_SASL_MECHANISM: i16 = 33;
const ILLEGAL_SASL_STATE: i16 = 34;
const SASL_AUTHENTICATION_FAILED: i16 = 58;

impl Session {
    /// A new connection's state; `required` when the broker has a `[sasl]` section.
    pub fn new(required: bool) -> Session {
        Session {
            required,
            principal: None,
            exchange: None,
        }
    }

    /// The connection's Kafka principal: `User:NAME` once SASL authenticated (over TLS too,
    /// as Kafka's SASL_SSL), else `otherwise` (a client certificate's), else `User:ANONYMOUS`.
    pub fn principal(&self, otherwise: Option<&str>) -> String {
        match (&self.principal, otherwise) {
            (Some(user), _) => format!("User:{user}"),
            (None, Some(p)) => p.to_string(),
            (None, None) => crate::acl::ANONYMOUS.to_string(),
        }
    }

    /// Whether requests other than ApiVersions and the SASL ones may be served.
    pub fn may_serve(&self) -> bool {
        !self.required || self.principal.is_some()
    }

    /// SaslHandshake: picks the mechanism.
    pub fn handshake(
        &mut self,
        config: Option<&SaslConfig>,
        mechanism: &str,
    ) -> (i16, Vec<String>) {
        let Some(config) = config else {
            return (UNSUPPORTED_SASL_MECHANISM, Vec::new());
        };
        if self.principal.is_some() || self.exchange.is_some() {
            return (ILLEGAL_SASL_STATE, config.mechanisms.clone());
        }
        match start(config, mechanism) {
            Some(exchange) => {
                self.exchange = Some(exchange);
                (0, config.mechanisms.clone())
            }
            None => (UNSUPPORTED_SASL_MECHANISM, config.mechanisms.clone()),
        }
    }

    /// SaslAuthenticate: `(error code, message, bytes for the client)`; a non-zero code
    /// closes the connection after the answer, as Kafka does.
    pub fn authenticate(
        &mut self,
        creds: Option<&Credentials>,
        message: &[u8],
    ) -> (i16, Option<String>, Vec<u8>) {
        let (Some(creds), Some(exchange)) = (creds, self.exchange.take()) else {
            return (
                ILLEGAL_SASL_STATE,
                Some("SaslAuthenticate without a SaslHandshake".into()),
                Vec::new(),
            );
        };
        match step(creds, exchange, message) {
            Step::Continue(next, bytes) => {
                self.exchange = Some(next);
                (0, None, bytes)
            }
            Step::Done(user, bytes) => {
                tracing::info!(user, "SASL authenticated");
                self.principal = Some(user);
                (0, None, bytes)
            }
            Step::Failed(why) => {
                tracing::info!(reason = %why, "SASL authentication failed");
                (SASL_AUTHENTICATION_FAILED, Some(why), Vec::new())
            }
        }
    }
}
