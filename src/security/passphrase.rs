//! Sealing a stream with a passphrase, for backups: argon2id derives an AES-256-GCM key from the
//! passphrase and a random salt, and the stream goes in 1 MiB chunks, each sealed with its
//! number and whether it is the last (the STREAM construction), so chunks cannot be reordered,
//! dropped or cut off unnoticed.
//!
//! Layout: `MAGIC`, salt (16), argon2 memory KiB, iterations, lanes (u32 BE each); then chunks of
//! a flag byte (1 on the last), the sealed length (u32 BE) and the sealed bytes. Every chunk
//! authenticates the header too.

use std::io::{self, Read, Write};

use ring::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};

pub const MAGIC: &[u8; 20] = b"authd sealed backup\n";
const CHUNK: usize = 1 << 20;
const TAG: usize = 16;
/// What the derivation costs: the same as a strong password hash.
const MEMORY_KIB: u32 = 64 * 1024;
const ITERATIONS: u32 = 3;
const LANES: u32 = 1;
const HEADER: usize = MAGIC.len() + 16 + 12;

fn derive(passphrase: &str, salt: &[u8], memory: u32, iterations: u32, lanes: u32) -> io::Result<LessSafeKey> {
    // Bounds on what a header may ask for, so a forged file cannot make us use gigabytes.
    if !(8..=256 * 1024).contains(&memory) || !(1..=16).contains(&iterations) || !(1..=8).contains(&lanes) {
        return Err(io::Error::new(io::ErrorKind::InvalidData, "the sealed file's header is damaged"));
    }
    let params = argon2::Params::new(memory, iterations, lanes, Some(32)).map_err(io::Error::other)?;
    let mut key = [0u8; 32];
    argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params)
        .hash_password_into(passphrase.as_bytes(), salt, &mut key)
        .map_err(io::Error::other)?;
    let unbound = UnboundKey::new(&AES_256_GCM, &key).map_err(|_| io::Error::other("cannot make a key"))?;
    Ok(LessSafeKey::new(unbound))
}

fn nonce(counter: u64, last: bool) -> Nonce {
    let mut n = [0u8; 12];
    n[..8].copy_from_slice(&counter.to_be_bytes());
    n[11] = u8::from(last);
    Nonce::assume_unique_for_key(n)
}

/// Whether `start` (the first bytes of a file) begins a sealed file.
pub fn is_sealed(start: &[u8]) -> bool {
    start.starts_with(MAGIC)
}

/// Seals what is written into `inner`; [`SealWriter::finish`] writes the last chunk.
pub struct SealWriter<W: Write> {
    inner: W,
    key: LessSafeKey,
    header: Vec<u8>,
    buf: Vec<u8>,
    counter: u64,
}

impl<W: Write> SealWriter<W> {
    pub fn new(mut inner: W, passphrase: &str) -> io::Result<Self> {
        let salt = crate::security::random::random_bytes::<16>();
        let key = derive(passphrase, &salt, MEMORY_KIB, ITERATIONS, LANES)?;
        let mut header = MAGIC.to_vec();
        header.extend_from_slice(&salt);
        for n in [MEMORY_KIB, ITERATIONS, LANES] {
            header.extend_from_slice(&n.to_be_bytes());
        }
        inner.write_all(&header)?;
        Ok(Self { inner, key, header, buf: Vec::with_capacity(CHUNK + TAG), counter: 0 })
    }

    fn seal(&mut self, last: bool) -> io::Result<()> {
        let n = nonce(self.counter, last);
        self.counter += 1;
        self.key
            .seal_in_place_append_tag(n, Aad::from(&self.header), &mut self.buf)
            .map_err(|_| io::Error::other("sealing failed"))?;
        let len = u32::try_from(self.buf.len()).map_err(io::Error::other)?;
        self.inner.write_all(&[u8::from(last)])?;
        self.inner.write_all(&len.to_be_bytes())?;
        self.inner.write_all(&self.buf)?;
        self.buf.clear();
        Ok(())
    }

    /// Seals the rest as the last chunk and returns the inner writer, flushed.
    pub fn finish(mut self) -> io::Result<W> {
        self.seal(true)?;
        self.inner.flush()?;
        Ok(self.inner)
    }
}

impl<W: Write> Write for SealWriter<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let room = CHUNK - self.buf.len();
        let take = room.min(data.len());
        self.buf.extend_from_slice(&data[..take]);
        if self.buf.len() == CHUNK {
            self.seal(false)?;
        }
        Ok(take)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Opens a sealed stream; a wrong passphrase, a changed byte or a cut-off file is an error.
pub struct OpenReader<R: Read> {
    inner: R,
    key: LessSafeKey,
    header: Vec<u8>,
    plain: Vec<u8>,
    at: usize,
    counter: u64,
    done: bool,
}

impl<R: Read> OpenReader<R> {
    pub fn new(mut inner: R, passphrase: &str) -> io::Result<Self> {
        let mut header = vec![0u8; HEADER];
        inner.read_exact(&mut header)?;
        if !is_sealed(&header) {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "not a sealed authd backup"));
        }
        let word = |i: usize| {
            let at = MAGIC.len() + 16 + 4 * i;
            u32::from_be_bytes([header[at], header[at + 1], header[at + 2], header[at + 3]])
        };
        let salt = &header[MAGIC.len()..MAGIC.len() + 16];
        let key = derive(passphrase, salt, word(0), word(1), word(2))?;
        Ok(Self { inner, key, header, plain: Vec::new(), at: 0, counter: 0, done: false })
    }

    fn next_chunk(&mut self) -> io::Result<()> {
        let bad = |why: &str| io::Error::new(io::ErrorKind::InvalidData, why.to_owned());
        let mut head = [0u8; 5];
        self.inner.read_exact(&mut head).map_err(|_| bad("the sealed backup is cut off"))?;
        let last = match head[0] {
            0 => false,
            1 => true,
            _ => return Err(bad("the sealed backup is damaged")),
        };
        let len = u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
        if !(TAG..=CHUNK + TAG).contains(&len) {
            return Err(bad("the sealed backup is damaged"));
        }
        self.plain.resize(len, 0);
        self.inner.read_exact(&mut self.plain).map_err(|_| bad("the sealed backup is cut off"))?;
        let n = nonce(self.counter, last);
        self.counter += 1;
        let opened = self
            .key
            .open_in_place(n, Aad::from(&self.header), &mut self.plain)
            .map_err(|_| bad("wrong passphrase, or the sealed backup was changed"))?
            .len();
        self.plain.truncate(opened);
        self.at = 0;
        if last {
            let mut more = [0u8; 1];
            if self.inner.read(&mut more)? != 0 {
                return Err(bad("the sealed backup has bytes after its end"));
            }
            self.done = true;
        }
        Ok(())
    }
}

impl<R: Read> Read for OpenReader<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.at == self.plain.len() {
            if self.done {
                return Ok(0);
            }
            self.next_chunk()?;
        }
        let n = out.len().min(self.plain.len() - self.at);
        out[..n].copy_from_slice(&self.plain[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seal(data: &[u8], pass: &str) -> Vec<u8> {
        let mut w = SealWriter::new(Vec::new(), pass).unwrap();
        w.write_all(data).unwrap();
        w.finish().unwrap()
    }

    fn open(sealed: &[u8], pass: &str) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        OpenReader::new(sealed, pass)?.read_to_end(&mut out)?;
        Ok(out)
    }

    #[test]
    fn what_is_sealed_opens_with_its_passphrase_only_and_whole_only() {
        let data: Vec<u8> = (0..CHUNK * 2 + 77).map(|i| (i % 251) as u8).collect();
        let sealed = seal(&data, "correct horse");
        assert!(is_sealed(&sealed));
        assert_eq!(open(&sealed, "correct horse").unwrap(), data);
        assert!(open(&sealed, "wrong horse").is_err());
        // Cut off after a whole chunk: the last-chunk flag is missing.
        let first = HEADER + 5 + CHUNK + TAG;
        assert!(open(&sealed[..first], "correct horse").is_err());
        // A flipped byte anywhere, the header included.
        for at in [5, HEADER + 7, sealed.len() - 3] {
            let mut bad = sealed.clone();
            bad[at] ^= 1;
            assert!(open(&bad, "correct horse").is_err(), "byte {at}");
        }
        // Empty input still seals to one (last) chunk.
        assert_eq!(open(&seal(b"", "p"), "p").unwrap(), b"");
    }
}
