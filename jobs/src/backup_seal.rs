//! Encryption of backup files with the operator's backup key: the gzip'd
//! stream cut in 64 KiB pieces, each sealed with XChaCha20-Poly1305 in the
//! STREAM construction (`aead::stream`, big-endian 32-bit counter, the
//! last piece marked), so that a piece changed, dropped, reordered or cut
//! off at the end is refused when read.
//!
//! File: [`MAGIC`], a random 19-byte nonce prefix, then pieces, each its
//! sealed length (4 bytes, big-endian) and the sealed bytes.

use std::io::{Read, Write};

use chacha20poly1305::aead::stream::{DecryptorBE32, EncryptorBE32};
use chacha20poly1305::{KeyInit, XChaCha20Poly1305};

/// How an encrypted backup starts.
pub const MAGIC: &[u8] = b"SLUICE-BACKUP-SEALED-1\n";

/// Plain bytes per sealed piece.
const PIECE: usize = 64 * 1024;

/// Bytes of the nonce prefix (XChaCha20's 24 less STREAM's 5).
const NONCE_PREFIX: usize = 19;

/// A writer that seals what it is given, a piece at a time, into `inner`.
pub struct Sealing<W: Write> {
    inner: W,
    encryptor: EncryptorBE32<XChaCha20Poly1305>,
    pending: Vec<u8>,
}

impl<W: Write> std::fmt::Debug for Sealing<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealing(..)")
    }
}

fn sealing_failed() -> std::io::Error {
    std::io::Error::other("cannot seal the backup")
}

impl<W: Write> Sealing<W> {
    /// Start a sealed stream with `key` on `inner` (its header written).
    pub fn new(mut inner: W, key: &[u8; 32]) -> std::io::Result<Self> {
        let prefix: [u8; NONCE_PREFIX] = rand::random();
        inner.write_all(MAGIC)?;
        inner.write_all(&prefix)?;
        let cipher = XChaCha20Poly1305::new(key.into());
        Ok(Self {
            inner,
            encryptor: EncryptorBE32::from_aead(cipher, prefix.as_slice().into()),
            pending: Vec::with_capacity(PIECE),
        })
    }

    fn put(&mut self, sealed: &[u8]) -> std::io::Result<()> {
        let len = u32::try_from(sealed.len()).map_err(|_| sealing_failed())?;
        self.inner.write_all(&len.to_be_bytes())?;
        self.inner.write_all(sealed)
    }

    /// Seal what is left as the last piece; the inner writer.
    pub fn finish(mut self) -> std::io::Result<W> {
        let last = std::mem::take(&mut self.pending);
        let sealed = self
            .encryptor
            .encrypt_last(last.as_slice())
            .map_err(|_| sealing_failed())?;
        let len = u32::try_from(sealed.len()).map_err(|_| sealing_failed())?;
        self.inner.write_all(&len.to_be_bytes())?;
        self.inner.write_all(&sealed)?;
        self.inner.flush()?;
        Ok(self.inner)
    }
}

impl<W: Write> Write for Sealing<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.pending.extend_from_slice(buf);
        while self.pending.len() > PIECE {
            let rest = self.pending.split_off(PIECE);
            let piece = std::mem::replace(&mut self.pending, rest);
            let sealed = self
                .encryptor
                .encrypt_next(piece.as_slice())
                .map_err(|_| sealing_failed())?;
            self.put(&sealed)?;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        // Pieces are sealed whole; what is pending waits for more or the end.
        self.inner.flush()
    }
}

/// A reader of a sealed stream: the plain bytes, or an error for any
/// piece that does not open (another key, or changed).
pub struct Opening<R: Read> {
    inner: R,
    decryptor: Option<DecryptorBE32<XChaCha20Poly1305>>,
    /// The length of the next piece, read ahead to know the last one.
    next_len: Option<u32>,
    plain: Vec<u8>,
    at: usize,
}

impl<R: Read> std::fmt::Debug for Opening<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Opening(..)")
    }
}

fn not_openable() -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::InvalidData,
        "it cannot be decrypted: written with another key, or changed since",
    )
}

/// The next 4-byte length, `None` at the end of the stream.
fn read_len(r: &mut impl Read) -> std::io::Result<Option<u32>> {
    let mut len = [0u8; 4];
    let mut got = 0;
    while got < 4 {
        match r.read(&mut len[got..])? {
            0 if got == 0 => return Ok(None),
            0 => return Err(not_openable()),
            n => got += n,
        }
    }
    Ok(Some(u32::from_be_bytes(len)))
}

impl<R: Read> Opening<R> {
    /// Open the sealed stream `inner`, whose [`MAGIC`] was read already.
    pub fn new(mut inner: R, key: &[u8; 32]) -> std::io::Result<Self> {
        let mut prefix = [0u8; NONCE_PREFIX];
        inner.read_exact(&mut prefix).map_err(|_| not_openable())?;
        let cipher = XChaCha20Poly1305::new(key.into());
        let next_len = read_len(&mut inner)?;
        Ok(Self {
            inner,
            decryptor: Some(DecryptorBE32::from_aead(cipher, prefix.as_slice().into())),
            next_len,
            plain: Vec::new(),
            at: 0,
        })
    }

    /// Open the next piece into `plain`; false at the end.
    fn open_next(&mut self) -> std::io::Result<bool> {
        let Some(len) = self.next_len else {
            // Ended without a last piece: cut off.
            return match self.decryptor {
                None => Ok(false),
                Some(_) => Err(not_openable()),
            };
        };
        // A sealed piece is at most a plain piece and its tag.
        if len as usize > PIECE + 16 {
            return Err(not_openable());
        }
        let mut sealed = vec![0u8; len as usize];
        self.inner
            .read_exact(&mut sealed)
            .map_err(|_| not_openable())?;
        self.next_len = read_len(&mut self.inner)?;
        let plain = if self.next_len.is_some() {
            let decryptor = self.decryptor.as_mut().ok_or_else(not_openable)?;
            decryptor.decrypt_next(sealed.as_slice())
        } else {
            let decryptor = self.decryptor.take().ok_or_else(not_openable)?;
            decryptor.decrypt_last(sealed.as_slice())
        }
        .map_err(|_| not_openable())?;
        self.plain = plain;
        self.at = 0;
        Ok(true)
    }
}

impl<R: Read> Read for Opening<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.at == self.plain.len() {
            if self.decryptor.is_none() && self.next_len.is_none() {
                return Ok(0);
            }
            if !self.open_next()? {
                return Ok(0);
            }
        }
        let n = buf.len().min(self.plain.len() - self.at);
        buf[..n].copy_from_slice(&self.plain[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seal(key: &[u8; 32], plain: &[u8]) -> Vec<u8> {
        let mut s = Sealing::new(Vec::new(), key).expect("seal");
        s.write_all(plain).expect("write");
        s.finish().expect("finish")
    }

    fn open(key: &[u8; 32], sealed: &[u8]) -> std::io::Result<Vec<u8>> {
        let body = sealed.strip_prefix(MAGIC).expect("magic");
        let mut out = Vec::new();
        Opening::new(body, key)?.read_to_end(&mut out)?;
        Ok(out)
    }

    #[test]
    fn what_is_sealed_opens_with_its_key_only_and_unchanged() {
        let key = [7u8; 32];
        for size in [0, 10, PIECE, PIECE + 1, 3 * PIECE + 17] {
            let plain: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
            let sealed = seal(&key, &plain);
            assert_eq!(open(&key, &sealed).expect("open"), plain, "{size}");
            assert!(open(&[8u8; 32], &sealed).is_err(), "another key, {size}");
            // A byte changed anywhere past the header.
            let mut changed = sealed.clone();
            let last = changed.len() - 1;
            changed[last] ^= 1;
            assert!(open(&key, &changed).is_err(), "changed, {size}");
        }
        // Cut after a whole piece: refused, not a shorter backup.
        let plain = vec![1u8; 2 * PIECE + 5];
        let sealed = seal(&key, &plain);
        let first = MAGIC.len() + NONCE_PREFIX + 4 + PIECE + 16;
        assert!(open(&key, &sealed[..first]).is_err());
    }
}
