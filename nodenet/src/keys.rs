//! A node's key material: ed25519 identity, X25519 Noise key, and one X25519 Sphinx
//! key per epoch. Kept in a data directory (files of 32 raw bytes, mode 0600) so a
//! restarted node keeps its identity and current keys; in memory when no directory
//! is configured.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

use ed25519_dalek::SigningKey;
use mixnet_core::sphinx::{NodeAddress, NodeSecret};
use zeroize::Zeroize;

/// A node's keys.
pub struct NodeIdentity {
    /// Signs descriptors; its public key is the node's address.
    pub signing: SigningKey,
    /// Static key of Noise links (and of client sessions on gateways).
    pub noise: NodeSecret,
    dir: Option<PathBuf>,
    sphinx: BTreeMap<u64, NodeSecret>,
}

fn random_key() -> [u8; 32] {
    let mut k = [0u8; 32];
    getrandom::fill(&mut k).expect("the operating system provides randomness");
    k
}

fn load_or_create(dir: Option<&Path>, name: &str) -> io::Result<[u8; 32]> {
    let Some(dir) = dir else { return Ok(random_key()) };
    let path = dir.join(name);
    match std::fs::read(&path) {
        Ok(mut bytes) => {
            let key = bytes.as_slice().try_into().map_err(|_| {
                io::Error::new(io::ErrorKind::InvalidData, format!("{} is not a 32-byte key", path.display()))
            });
            bytes.zeroize();
            key
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let key = random_key();
            write_secret(&path, &key)?;
            Ok(key)
        }
        Err(e) => Err(io::Error::new(e.kind(), format!("reading {}: {e}", path.display()))),
    }
}

/// Writes `secret` to `path`, readable by the owner only (mode 0600 on Unix).
pub fn write_secret(path: &Path, secret: &[u8]) -> io::Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path).map_err(|e| io::Error::new(e.kind(), format!("writing {}: {e}", path.display())))?;
    f.write_all(secret)
}

impl NodeIdentity {
    /// Loads keys from `dir` (creating missing ones), or makes ephemeral keys.
    pub fn load_or_create(dir: Option<&Path>) -> io::Result<Self> {
        if let Some(d) = dir {
            std::fs::create_dir_all(d)
                .map_err(|e| io::Error::new(e.kind(), format!("creating {}: {e}", d.display())))?;
        }
        let signing = SigningKey::from_bytes(&load_or_create(dir, "identity.key")?);
        let noise = NodeSecret::from_bytes(load_or_create(dir, "noise.key")?);
        Ok(Self { signing, noise, dir: dir.map(Path::to_path_buf), sphinx: BTreeMap::new() })
    }

    /// The node's address (its identity public key).
    pub fn address(&self) -> NodeAddress {
        NodeAddress(self.signing.verifying_key().to_bytes())
    }

    /// The Sphinx key for `epoch`, loaded or created.
    pub fn sphinx_key(&mut self, epoch: u64) -> io::Result<NodeSecret> {
        if let Some(k) = self.sphinx.get(&epoch) {
            return Ok(k.clone());
        }
        let key = NodeSecret::from_bytes(load_or_create(self.dir.as_deref(), &format!("sphinx-{epoch}.key"))?);
        self.sphinx.insert(epoch, key.clone());
        Ok(key)
    }

    /// Forgets (and deletes) Sphinx keys of epochs before `epoch`.
    pub fn prune_sphinx_keys(&mut self, epoch: u64) {
        let old: Vec<u64> = self.sphinx.range(..epoch).map(|(e, _)| *e).collect();
        for e in old {
            self.sphinx.remove(&e);
            if let Some(d) = &self.dir {
                let _ = std::fs::remove_file(d.join(format!("sphinx-{e}.key")));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_persist_owner_only_and_a_bad_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let mut first = NodeIdentity::load_or_create(Some(dir.path())).unwrap();
        let epoch_key = first.sphinx_key(7).unwrap().public_key();
        let mut again = NodeIdentity::load_or_create(Some(dir.path())).unwrap();
        assert_eq!(first.address(), again.address());
        assert_eq!(first.noise.public_key(), again.noise.public_key());
        assert_eq!(again.sphinx_key(7).unwrap().public_key(), epoch_key);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join("identity.key")).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        // without a directory, every start is a new node
        let a = NodeIdentity::load_or_create(None).unwrap();
        let b = NodeIdentity::load_or_create(None).unwrap();
        assert_ne!(a.address(), b.address());
        // a truncated key file is refused, by name
        std::fs::write(dir.path().join("noise.key"), [1u8; 5]).unwrap();
        let e = NodeIdentity::load_or_create(Some(dir.path())).err().unwrap().to_string();
        assert!(e.contains("noise.key is not a 32-byte key"), "{e}");
    }
}
