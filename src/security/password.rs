//! Passwords: the NIST 800-63B policy, and argon2id hashing on a small pool of worker threads.
//!
//! Each worker allocates its argon2 memory at its first job, reuses it while jobs come, and gives
//! it back to the OS after `passwords.release_memory_after` idle: memory stays at most workers × m_cost under
//! any load, and near nothing at rest. A bounded queue in front turns a flood into quick 503s
//! instead of unbounded waiting.

use std::{
    collections::HashSet,
    sync::{
        Arc, LazyLock, OnceLock,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use argon2::{Algorithm, Argon2, Block, Params, Version};
use base64::{Engine as _, engine::general_purpose::STANDARD_NO_PAD as PHC_B64};
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TrySendError};
use subtle::ConstantTimeEq as _;
use tokio::sync::oneshot;
use unicode_normalization::UnicodeNormalization as _;

use crate::{
    config::{Argon2Config, PasswordsConfig},
    error::{Error, FieldError},
    security::random::random_bytes,
};

/// The 10,000 commonest passwords of 8+ characters (from zxcvbn's frequency list, MIT).
static COMMON: LazyLock<HashSet<&'static str>> =
    LazyLock::new(|| include_str!("common_passwords.txt").lines().filter(|l| !l.is_empty()).collect());

/// NFKC, so that the same password typed on different keyboards verifies (NIST 800-63B 5.1.1.2).
pub fn normalize(password: &str) -> String {
    password.nfkc().collect()
}

#[derive(Debug, Clone)]
pub struct PasswordPolicy {
    min: usize,
    max: usize,
}

impl PasswordPolicy {
    pub fn new(cfg: &PasswordsConfig) -> Self {
        Self { min: cfg.min_length, max: cfg.max_length }
    }

    /// Length in code points, a blocklist of common passwords, and no password that contains the
    /// account's own names. No composition rules.
    pub fn check(&self, field: &str, password: &str, context: &[&str]) -> Result<(), Error> {
        let pw = normalize(password);
        let len = pw.chars().count();
        let fail = |code: &str, msg: String| Err(Error::Invalid(vec![FieldError::new(field, code, msg)]));
        if len < self.min {
            return fail("too_short", format!("{field} must be at least {} characters", self.min));
        }
        if len > self.max {
            return fail("too_long", format!("{field} must be at most {} characters", self.max));
        }
        let lower = pw.to_lowercase();
        if COMMON.contains(lower.as_str()) {
            return fail("too_common", format!("{field} is one of the most commonly used passwords; choose another"));
        }
        for word in context.iter().map(|w| w.to_lowercase()).filter(|w| w.chars().count() >= 3) {
            if lower.contains(&word) {
                return fail("contains_identifier", format!("{field} must not contain your email, phone or username"));
            }
        }
        Ok(())
    }

    /// Inputs beyond this many bytes are refused before any hashing (a cheap DoS guard that is
    /// far above any valid password).
    pub fn max_bytes(&self) -> usize {
        self.max * 4
    }
}

/// Outcome of a verification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verified {
    pub ok: bool,
    /// The stored hash uses other parameters than the configured ones.
    pub needs_rehash: bool,
}

enum Work {
    Hash { password: String, reply: oneshot::Sender<Result<String, Error>> },
    Verify { password: String, phc: String, reply: oneshot::Sender<Result<Verified, Error>> },
}

struct Job {
    work: Work,
    queued: Instant,
}

/// What the pool reports: memory held, and how long jobs waited for a worker.
#[derive(Default)]
struct Stats {
    memory_bytes: AtomicUsize,
    on_wait: OnceLock<Box<dyn Fn(Duration) + Send + Sync>>,
}

/// Handle to the hashing pool. Cheap to clone; the workers stop when the last handle is dropped.
#[derive(Clone)]
pub struct PasswordHasher {
    jobs: Sender<Job>,
    /// Verified against when the account does not exist, so that timing tells nothing.
    dummy: Arc<str>,
    stats: Arc<Stats>,
}

impl PasswordHasher {
    /// Starts the workers. They hold no argon2 memory until the first job, and return it after
    /// `release_after` without one.
    pub fn start(params: Argon2Config, workers: usize, queue: usize, release_after: Duration) -> Result<Self, Error> {
        let argon = argon2_for(params)?;
        // Costs exactly what a real hash of these parameters costs to check, and matches nothing:
        // its "hash" is random bytes, not the output of any password.
        let p = argon.params();
        let dummy = format!(
            "$argon2id$v=19$m={},t={},p={}${}${}",
            p.m_cost(),
            p.t_cost(),
            p.p_cost(),
            PHC_B64.encode(random_bytes::<16>()),
            PHC_B64.encode(random_bytes::<32>())
        );
        let (tx, rx) = crossbeam_channel::bounded::<Job>(queue);
        let stats = Arc::new(Stats::default());
        for i in 0..workers.max(1) {
            let (rx, stats) = (rx.clone(), Arc::clone(&stats));
            std::thread::Builder::new()
                .name(format!("authd-argon2-{i}"))
                .spawn(move || worker(params, release_after, &rx, &stats))
                .map_err(|e| Error::Internal(format!("cannot start hashing worker: {e}")))?;
        }
        Ok(Self { jobs: tx, dummy: dummy.into(), stats })
    }

    pub async fn hash(&self, password: &str) -> Result<String, Error> {
        let (reply, rx) = oneshot::channel();
        self.submit(Work::Hash { password: normalize(password), reply })?;
        rx.await.map_err(|_| Error::Internal("hashing worker stopped".into()))?
    }

    pub async fn verify(&self, password: &str, phc: &str) -> Result<Verified, Error> {
        let (reply, rx) = oneshot::channel();
        self.submit(Work::Verify { password: normalize(password), phc: phc.to_owned(), reply })?;
        rx.await.map_err(|_| Error::Internal("hashing worker stopped".into()))?
    }

    /// Spends the same work as a real verification and always fails.
    pub async fn verify_dummy(&self, password: &str) -> Result<Verified, Error> {
        let dummy = Arc::clone(&self.dummy);
        self.verify(password, &dummy).await.map(|_| Verified { ok: false, needs_rehash: false })
    }

    /// Jobs waiting for a worker.
    pub fn queued(&self) -> usize {
        self.jobs.len()
    }

    /// argon2 working memory the workers hold now.
    pub fn memory_bytes(&self) -> usize {
        self.stats.memory_bytes.load(Ordering::Relaxed)
    }

    /// Tells `f` how long each job waited for a worker.
    pub fn observe_waits(&self, f: impl Fn(Duration) + Send + Sync + 'static) {
        let _ = self.stats.on_wait.set(Box::new(f));
    }

    fn submit(&self, work: Work) -> Result<(), Error> {
        self.jobs.try_send(Job { work, queued: Instant::now() }).map_err(|e| match e {
            TrySendError::Full(_) => Error::Busy,
            TrySendError::Disconnected(_) => Error::Internal("hashing pool stopped".into()),
        })
    }
}

/// Working memory for `count` blocks: an extent of its own in jemalloc, whose pages go back to the
/// OS a second after it is dropped.
fn blocks(count: usize) -> Vec<Block> {
    vec![Block::default(); count]
}

fn worker(params: Argon2Config, release_after: Duration, rx: &Receiver<Job>, stats: &Stats) {
    let Ok(argon) = argon2_for(params) else {
        return;
    };
    let count = argon.params().block_count();
    let bytes = count * std::mem::size_of::<Block>();
    let mut memory: Option<Vec<Block>> = None;
    loop {
        let next = if memory.is_some() {
            rx.recv_timeout(release_after)
        } else {
            rx.recv().map_err(|_| RecvTimeoutError::Disconnected)
        };
        let job = match next {
            Ok(job) => job,
            Err(RecvTimeoutError::Timeout) => {
                memory = None;
                stats.memory_bytes.fetch_sub(bytes, Ordering::Relaxed);
                continue;
            }
            Err(RecvTimeoutError::Disconnected) => return,
        };
        if let Some(f) = stats.on_wait.get() {
            f(job.queued.elapsed());
        }
        let memory = memory.get_or_insert_with(|| {
            stats.memory_bytes.fetch_add(bytes, Ordering::Relaxed);
            blocks(count)
        });
        match job.work {
            Work::Hash { password, reply } => {
                let _ = reply.send(hash_with(&argon, memory, password.as_bytes()));
            }
            Work::Verify { password, phc, reply } => {
                let _ = reply.send(verify_with(params, memory, password.as_bytes(), &phc));
            }
        }
    }
}

fn argon2_for(p: Argon2Config) -> Result<Argon2<'static>, Error> {
    let params = Params::new(p.memory_kib, p.iterations, p.parallelism, Some(32))
        .map_err(|e| Error::Internal(format!("invalid argon2 parameters: {e}")))?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

fn hash_with(argon: &Argon2<'_>, memory: &mut [Block], password: &[u8]) -> Result<String, Error> {
    let salt = random_bytes::<16>();
    let mut out = [0u8; 32];
    argon
        .hash_password_into_with_memory(password, &salt, &mut out, memory)
        .map_err(|e| Error::Internal(format!("argon2: {e}")))?;
    let p = argon.params();
    Ok(format!(
        "$argon2id$v=19$m={},t={},p={}${}${}",
        p.m_cost(),
        p.t_cost(),
        p.p_cost(),
        PHC_B64.encode(salt),
        PHC_B64.encode(out)
    ))
}

/// A parsed `$argon2id$v=19$m=..,t=..,p=..$salt$hash` string.
struct Phc {
    params: Argon2Config,
    salt: Vec<u8>,
    hash: Vec<u8>,
}

fn parse_phc(phc: &str) -> Option<Phc> {
    let mut parts = phc.split('$');
    if !parts.next()?.is_empty() || parts.next()? != "argon2id" || parts.next()? != "v=19" {
        return None;
    }
    let (mut m, mut t, mut p) = (None, None, None);
    for kv in parts.next()?.split(',') {
        let (k, v) = kv.split_once('=')?;
        let v: u32 = v.parse().ok()?;
        match k {
            "m" => m = Some(v),
            "t" => t = Some(v),
            "p" => p = Some(v),
            _ => return None,
        }
    }
    let salt = PHC_B64.decode(parts.next()?).ok()?;
    let hash = PHC_B64.decode(parts.next()?).ok()?;
    if parts.next().is_some() || hash.len() < 16 {
        return None;
    }
    Some(Phc { params: Argon2Config { memory_kib: m?, iterations: t?, parallelism: p? }, salt, hash })
}

fn verify_with(current: Argon2Config, memory: &mut [Block], password: &[u8], phc: &str) -> Result<Verified, Error> {
    let parsed = parse_phc(phc).ok_or_else(|| Error::Internal("stored password hash is not argon2id PHC".into()))?;
    let params = Params::new(
        parsed.params.memory_kib,
        parsed.params.iterations,
        parsed.params.parallelism,
        Some(parsed.hash.len()),
    )
    .map_err(|e| Error::Internal(format!("stored argon2 parameters: {e}")))?;
    // A hash made with more memory than the configured one (settings lowered since) needs a
    // bigger block; that is rare, so allocate it just for this call.
    let mut bigger;
    let blocks: &mut [Block] = if params.block_count() <= memory.len() {
        memory
    } else {
        bigger = blocks(params.block_count());
        &mut bigger
    };
    let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
    let mut out = vec![0u8; parsed.hash.len()];
    argon
        .hash_password_into_with_memory(password, &parsed.salt, &mut out, blocks)
        .map_err(|e| Error::Internal(format!("argon2: {e}")))?;
    Ok(Verified { ok: bool::from(out.ct_eq(&parsed.hash)), needs_rehash: parsed.params != current })
}

#[cfg(test)]
mod tests {
    use super::*;

    const FAST: Argon2Config = Argon2Config { memory_kib: 64, iterations: 1, parallelism: 1 };

    #[test]
    fn policy_refuses_short_long_common_and_personal_passwords() {
        let p = PasswordPolicy::new(&PasswordsConfig::default());
        let code = |pw: &str, ctx: &[&str]| match p.check("password", pw, ctx) {
            Ok(()) => "ok".to_string(),
            Err(Error::Invalid(errs)) => errs[0].code.clone(),
            Err(e) => panic!("{e}"),
        };
        assert_eq!(code("short", &[]), "too_short");
        assert_eq!(code(&"x".repeat(257), &[]), "too_long");
        assert_eq!(code("password1234", &[]), "too_common");
        assert_eq!(code("Password", &[]), "too_common");
        assert_eq!(code("alice-is-great", &["alice"]), "contains_identifier");
        assert_eq!(code("correct horse battery staple", &["alice"]), "ok");
        // Length counts code points: eight CJK characters pass.
        assert_eq!(code("密码密码密码密码", &[]), "ok");
        assert_eq!(code("all lowercase words", &[]), "ok");
    }

    #[tokio::test]
    async fn hashes_verify_and_report_outdated_parameters() {
        let h = PasswordHasher::start(FAST, 1, 8, Duration::from_secs(20)).unwrap();
        let phc = h.hash("tr0ub4dor&3-horse").await.unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=64,t=1,p=1$"), "{phc}");
        assert_eq!(h.verify("tr0ub4dor&3-horse", &phc).await.unwrap(), Verified { ok: true, needs_rehash: false });
        assert!(!h.verify("tr0ub4dor&3-horsE", &phc).await.unwrap().ok);
        assert!(!h.verify("tr0ub4dor&3-hors", &phc).await.unwrap().ok);
        assert_ne!(phc, h.hash("tr0ub4dor&3-horse").await.unwrap(), "salts differ");
        // NFC and NFD spellings are the same password.
        let phc = h.hash("ma\u{00F1}ana-long-pass").await.unwrap();
        assert!(h.verify("man\u{0303}ana-long-pass", &phc).await.unwrap().ok);

        let newer =
            PasswordHasher::start(Argon2Config { memory_kib: 128, ..FAST }, 1, 8, Duration::from_secs(20)).unwrap();
        assert_eq!(
            newer.verify("ma\u{00F1}ana-long-pass", &phc).await.unwrap(),
            Verified { ok: true, needs_rehash: true }
        );
        assert!(!h.verify_dummy("anything").await.unwrap().ok);
        assert!(h.verify("x", "$argon2i$v=19$m=64,t=1,p=1$AAAA$AAAA").await.is_err());
    }

    #[tokio::test]
    async fn workers_hold_memory_only_while_there_is_work() {
        let h = PasswordHasher::start(FAST, 2, 8, Duration::from_millis(300)).unwrap();
        assert_eq!(h.memory_bytes(), 0, "nothing is allocated at start");
        let waits = Arc::new(AtomicUsize::new(0));
        let w = Arc::clone(&waits);
        h.observe_waits(move |_| {
            w.fetch_add(1, Ordering::Relaxed);
        });
        let phc = h.hash("a long enough passphrase").await.unwrap();
        assert!(h.verify("a long enough passphrase", &phc).await.unwrap().ok);
        let held = h.memory_bytes();
        assert!(held >= 64 * 1024, "{held}");
        assert_eq!(waits.load(Ordering::Relaxed), 2);
        let mut released = false;
        for _ in 0..50 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            if h.memory_bytes() == 0 {
                released = true;
                break;
            }
        }
        assert!(released, "idle workers give their memory back");
        // And take it again when work comes.
        assert!(h.verify("a long enough passphrase", &phc).await.unwrap().ok);
        assert!(h.memory_bytes() > 0);
        assert_eq!(h.queued(), 0);
    }
}
