//! Password hashing with Argon2id, stored as PHC strings (`$argon2id$v=19$m=…,t=…,p=…$salt$hash`).
//!
//! Hashing costs tens of milliseconds of a core and `m_kib` of memory, so it runs on tokio's
//! blocking pool, never on the async workers, and a semaphore bounds how many run at once: a
//! burst of logins queues (up to `hash_queue_timeout`, then 503) instead of exhausting memory.

use std::sync::Arc;
use std::time::Duration;

use argon2::password_hash::{PasswordHash, SaltString};
use argon2::{Algorithm, Argon2, Params, PasswordHasher as _, PasswordVerifier as _, Version};
use tokio::sync::Semaphore;

use crate::config::Argon2Cost;
use crate::error::HashError;

#[derive(Clone)]
pub struct Hasher {
    params: Params,
    permits: Arc<Semaphore>,
    queue_timeout: Duration,
    /// A hash of a random password at the configured cost: verified against when the email is
    /// unknown, so that answer takes as long as a wrong password would.
    dummy_hash: Arc<str>,
}

fn argon2(params: Params) -> Argon2<'static> {
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

fn hash_blocking(params: Params, password: &[u8]) -> Result<String, HashError> {
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|e| HashError::Argon2(format!("salt: {e}")))?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| HashError::Argon2(e.to_string()))?;
    argon2(params)
        .hash_password(password, &salt)
        .map(|h| h.to_string())
        .map_err(|e| HashError::Argon2(e.to_string()))
}

fn verify_blocking(password: &[u8], phc: &str) -> Result<bool, HashError> {
    let parsed = PasswordHash::new(phc).map_err(|e| HashError::Argon2(e.to_string()))?;
    // The cost comes from the stored hash, so hashes made at an older cost still verify.
    match argon2(Params::default()).verify_password(password, &parsed) {
        Ok(()) => Ok(true),
        Err(argon2::password_hash::Error::Password) => Ok(false),
        Err(e) => Err(HashError::Argon2(e.to_string())),
    }
}

impl Hasher {
    pub async fn new(
        cost: Argon2Cost,
        max_concurrent: usize,
        queue_timeout: Duration,
    ) -> Result<Self, HashError> {
        let params = Params::new(cost.m_kib, cost.t, cost.p, None)
            .map_err(|e| HashError::Argon2(e.to_string()))?;
        let mut random = [0u8; 32];
        getrandom::fill(&mut random).map_err(|e| HashError::Argon2(format!("random: {e}")))?;
        let dummy_params = params.clone();
        let dummy =
            tokio::task::spawn_blocking(move || hash_blocking(dummy_params, &random)).await??;
        Ok(Hasher {
            params,
            permits: Arc::new(Semaphore::new(max_concurrent.max(1))),
            queue_timeout,
            dummy_hash: dummy.into(),
        })
    }

    /// Run `f` on the blocking pool once a hashing slot is free.
    async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, HashError> {
        let permit = tokio::time::timeout(self.queue_timeout, self.permits.clone().acquire_owned())
            .await
            .map_err(|_| HashError::Busy)?
            .map_err(|_| HashError::Busy)?;
        // The permit moves into the task: if the client goes away, the slot stays taken until
        // the hash actually finishes, so the bound holds.
        Ok(tokio::task::spawn_blocking(move || {
            let _permit = permit;
            f()
        })
        .await?)
    }

    /// A new PHC string for `password` at the configured cost.
    pub async fn hash(&self, password: String) -> Result<String, HashError> {
        let params = self.params.clone();
        self.run(move || hash_blocking(params, password.as_bytes()))
            .await?
    }

    /// Whether `password` matches `phc`.
    pub async fn verify(&self, password: String, phc: String) -> Result<bool, HashError> {
        self.run(move || verify_blocking(password.as_bytes(), &phc))
            .await?
    }

    /// Spend the time of a verification on a password no account has (unknown email).
    pub async fn verify_dummy(&self, password: String) -> Result<(), HashError> {
        let phc = self.dummy_hash.to_string();
        self.verify(password, phc).await.map(|_| ())
    }

    /// Whether `phc` was made at another cost than the configured one (rehash on next login).
    pub fn needs_rehash(&self, phc: &str) -> bool {
        let Ok(parsed) = PasswordHash::new(phc) else {
            return true;
        };
        if parsed.algorithm != Algorithm::Argon2id.ident() {
            return true;
        }
        match Params::try_from(&parsed) {
            Ok(p) => {
                p.m_cost() != self.params.m_cost()
                    || p.t_cost() != self.params.t_cost()
                    || p.p_cost() != self.params.p_cost()
            }
            Err(_) => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hash_verify_and_rehash() {
        let h = Hasher::new(Argon2Cost::TEST_ONLY_INSECURE, 2, Duration::from_secs(5))
            .await
            .unwrap();
        let phc = h.hash("correct horse".into()).await.unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=8,t=1,p=1$"), "{phc}");
        assert!(h.verify("correct horse".into(), phc.clone()).await.unwrap());
        assert!(!h.verify("wrong horse".into(), phc.clone()).await.unwrap());
        assert!(!h.needs_rehash(&phc));
        h.verify_dummy("x".into()).await.unwrap();
        // A corrupt stored hash is an error, not a match.
        assert!(h
            .verify("x".into(), "not a PHC string".into())
            .await
            .is_err());
        assert!(!matches!(
            h.verify("x".into(), "$argon2id$nonsense".into()).await,
            Ok(true)
        ));

        let owasp = Hasher::new(Argon2Cost::OWASP, 1, Duration::from_secs(5))
            .await
            .unwrap();
        assert!(owasp.needs_rehash(&phc));
        // A hash at an older cost still verifies under the new configuration.
        assert!(owasp.verify("correct horse".into(), phc).await.unwrap());
    }

    #[tokio::test]
    async fn queue_timeout_answers_busy() {
        let h = Hasher::new(Argon2Cost::TEST_ONLY_INSECURE, 1, Duration::from_millis(50))
            .await
            .unwrap();
        let _held = h.permits.clone().acquire_owned().await.unwrap();
        assert!(matches!(
            h.hash("password".into()).await,
            Err(HashError::Busy)
        ));
    }
}
