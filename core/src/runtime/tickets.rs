//! Session ticket keys: shared files (`sessionTickets.keyFiles` or
//! `keyDirectory`), read with each runtime like credentials, or, without
//! them, this process's own random keys, replaced every `rotation`.
//!
//! A key file holds 80 bytes (nginx's `ssl_session_ticket_key` and
//! Envoy's format: 16-byte name, 32-byte HMAC-SHA256 key, 32-byte
//! AES-256 key) or 48 (16, 16, 16: AES-128). The first key encrypts new
//! tickets; every key listed decrypts, so a key is rotated in by putting
//! it first, and out by removing it once its tickets have expired.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tlsgate_ossl::TicketKeyMaterial;

use crate::config::session_tickets::SessionTickets;

/// The keys a runtime encrypts and decrypts tickets with.
#[derive(Debug)]
pub enum TicketKeys {
    /// From files, first encrypting; with the files, for `/certs`.
    Files {
        keys: Arc<Vec<TicketKeyMaterial>>,
        files: Vec<PathBuf>,
        /// SHA-256 over the keys: a changed file is a changed runtime.
        content_id: [u8; 32],
    },
    /// This process's own, rotating.
    Random { rotation: Duration },
}

impl TicketKeys {
    /// The keys now, first encrypting.
    pub fn keys(&self) -> Arc<Vec<TicketKeyMaterial>> {
        match self {
            TicketKeys::Files { keys, .. } => keys.clone(),
            TicketKeys::Random { rotation } => random_keys(*rotation),
        }
    }

    pub fn content_id(&self) -> Option<[u8; 32]> {
        match self {
            TicketKeys::Files { content_id, .. } => Some(*content_id),
            TicketKeys::Random { .. } => None,
        }
    }
}

/// Reads the keys `settings` names; an error names the file.
pub fn load(settings: &SessionTickets) -> Result<TicketKeys, String> {
    if !settings.from_files() {
        return Ok(TicketKeys::Random {
            rotation: settings.rotation,
        });
    }
    let files = match &settings.key_directory {
        Some(dir) => list(dir)?,
        None => settings.key_files.clone(),
    };
    if files.is_empty() {
        return Err("sessionTickets: no key file".into());
    }
    let mut keys = Vec::new();
    let mut h = openssl::sha::Sha256::new();
    for f in &files {
        let data = std::fs::read(f).map_err(|e| format!("ticket key {}: {e}", f.display()))?;
        let k = parse(f, &data)?;
        if keys.iter().any(|o: &TicketKeyMaterial| o.name == k.name) {
            return Err(format!(
                "ticket key {}: its name (first 16 bytes) is another key's",
                f.display()
            ));
        }
        h.update(&k.name);
        h.update(&k.hmac);
        h.update(&k.aes);
        keys.push(k);
    }
    Ok(TicketKeys::Files {
        keys: Arc::new(keys),
        files,
        content_id: h.finish(),
    })
}

/// A mounted Secret's keys: its regular files, not `..data` and the like.
fn list(dir: &Path) -> Result<Vec<PathBuf>, String> {
    let err = |e: std::io::Error| format!("ticket key folder {}: {e}", dir.display());
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(err)? {
        let entry = entry.map_err(err)?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = entry.path();
        if name.starts_with('.') || !path.is_file() {
            continue;
        }
        files.push(path);
    }
    files.sort();
    Ok(files)
}

fn parse(path: &Path, data: &[u8]) -> Result<TicketKeyMaterial, String> {
    // nginx's layouts: 80 bytes name, HMAC, AES (Envoy's too); 48 bytes
    // name, AES, HMAC.
    let (hmac, aes) = match data.len() {
        80 => (16..48, 48..80),
        48 => (32..48, 16..32),
        n => {
            return Err(format!(
                "ticket key {}: {n} bytes, expected 80 (AES-256, nginx's and Envoy's) or 48 \
                 (AES-128); make one with `tlsgate certs ticket-key`",
                path.display()
            ))
        }
    };
    let mut name = [0u8; 16];
    name.copy_from_slice(&data[..16]);
    Ok(TicketKeyMaterial {
        name,
        hmac: data[hmac].to_vec(),
        aes: data[aes].to_vec(),
    })
}

/// This process's random keys: a new one every `rotation`, the two
/// before it still decrypting (a ticket lives at most three rotations).
fn random_keys(rotation: Duration) -> Arc<Vec<TicketKeyMaterial>> {
    static KEYS: Mutex<Option<(Instant, Arc<Vec<TicketKeyMaterial>>)>> = Mutex::new(None);
    let mut k = KEYS.lock().unwrap_or_else(|e| e.into_inner());
    let stale = k
        .as_ref()
        .is_none_or(|(made, _)| made.elapsed() >= rotation);
    if stale {
        let mut keys: Vec<TicketKeyMaterial> = random_key().into_iter().collect();
        if let Some((_, old)) = k.as_ref() {
            keys.extend(old.iter().take(2).cloned());
        }
        *k = Some((Instant::now(), Arc::new(keys)));
    }
    k.as_ref().map(|(_, v)| v.clone()).unwrap_or_default()
}

/// `None` when the RNG fails: then no ticket is issued, rather than one
/// under a key anybody could guess.
fn random_key() -> Option<TicketKeyMaterial> {
    let mut b = [0u8; 80];
    if let Err(e) = openssl::rand::rand_bytes(&mut b) {
        tracing::error!(error = %e, "no random session ticket key: tickets are off until one is made");
        return None;
    }
    let mut name = [0u8; 16];
    name.copy_from_slice(&b[..16]);
    Some(TicketKeyMaterial {
        name,
        hmac: b[16..48].to_vec(),
        aes: b[48..80].to_vec(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_in_order_and_formats() {
        let d = tempfile::tempdir().unwrap();
        let a = d.path().join("a.key");
        let b = d.path().join("b.key");
        std::fs::write(&a, [1u8; 80]).unwrap();
        let mut short = [2u8; 48];
        short[16..32].copy_from_slice(&[7u8; 16]);
        std::fs::write(&b, short).unwrap();
        let s = SessionTickets {
            key_files: vec![b.clone(), a.clone()],
            ..Default::default()
        };
        let k = load(&s).unwrap().keys();
        assert_eq!(k[0].name, [2u8; 16], "the first file encrypts");
        assert_eq!((k[0].hmac.len(), k[0].aes.len()), (16, 16));
        assert_eq!(k[0].aes, [7u8; 16], "nginx's 48 bytes: name, AES, HMAC");
        assert_eq!((k[1].hmac.len(), k[1].aes.len()), (32, 32));
        // A folder: sorted by name, dot entries skipped.
        std::fs::write(d.path().join("..data"), [3u8; 80]).unwrap();
        let s = SessionTickets {
            key_directory: Some(d.path().to_path_buf()),
            ..Default::default()
        };
        assert_eq!(load(&s).unwrap().keys()[0].name, [1u8; 16]);
        std::fs::write(&a, [1u8; 79]).unwrap();
        let e = load(&s).unwrap_err();
        assert!(e.contains("a.key") && e.contains("79 bytes"), "{e}");
        std::fs::write(&a, [2u8; 80]).unwrap();
        assert!(load(&s).unwrap_err().contains("another key's"));
    }

    #[test]
    fn random_keys_rotate_and_keep_two() {
        let r = TicketKeys::Random {
            rotation: Duration::from_millis(30),
        };
        let first = r.keys()[0].name;
        assert_eq!(r.keys()[0].name, first, "stable within a rotation");
        std::thread::sleep(Duration::from_millis(40));
        let k = r.keys();
        assert_ne!(k[0].name, first);
        assert_eq!(k[1].name, first, "the previous key still decrypts");
        std::thread::sleep(Duration::from_millis(40));
        let _ = r.keys();
        std::thread::sleep(Duration::from_millis(40));
        assert!(r.keys().iter().all(|k| k.name != first), "at most three");
    }
}
