//! Node ↔ node links: TCP + Noise (`Noise_XK_25519_ChaChaPoly_BLAKE2s`, snow), one
//! Sphinx packet per length-prefixed frame (`u16` big-endian length, then the Noise
//! message). The connecting node knows the other's static key from the topology.
//!
//! [`Links`] keeps one bounded queue and one connection task per peer; `send` never
//! blocks: when a queue is full the packet is dropped and counted (backpressure the
//! way a mix must behave). [`serve`] accepts links and hands each packet to a callback.
//!
//! **Admission**: a node accepts a link only from a static key that the topology it
//! holds (or the one before it, for the overlap of an epoch change) lists for a
//! node; anyone else is refused after the handshake and counted
//! (`rejected_peers`), so a stranger who reaches the port cannot inject packets.
//! An admitted link starts with one empty transport message from the responder;
//! the initiator sends nothing before it, so packets for a node that does not know
//! us yet stay in our queue (and go once its topology lists us) instead of being
//! written into a connection about to be closed.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use mixnet_core::sphinx::{NodeAddress, NodeSecret};
use mixnet_core::topology::Topology;
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufWriter};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use zeroize::Zeroizing;

use crate::metrics::Counter;

/// The Noise pattern of node links.
pub const NOISE_PARAMS: &str = "Noise_XK_25519_ChaChaPoly_BLAKE2s";
const MAX_MESSAGE: usize = 65535;
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// What the links did.
#[derive(Debug, Default)]
pub struct LinkStats {
    /// Packets written to a link.
    pub sent: Counter,
    /// Packets read from a link.
    pub received: Counter,
    /// Packets dropped because the peer's queue was full.
    pub dropped_queue_full: Counter,
    /// Packets dropped because the next hop is not in the topology.
    pub dropped_unknown_peer: Counter,
    /// Packets lost when a connection broke mid-write.
    pub dropped_link_error: Counter,
    /// Failed connection attempts.
    pub connect_failures: Counter,
    /// Failed handshakes (either side).
    pub handshake_failures: Counter,
    /// Frames that were malformed or failed to decrypt (the connection is closed).
    pub bad_frames: Counter,
    /// Packets dropped on purpose by fault injection (tests only).
    pub dropped_injected: Counter,
    /// Incoming links refused because the peer's static key is not in the topology.
    pub rejected_peers: Counter,
}

/// How to reach a peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    /// `host:port`.
    pub addr: String,
    /// Its Noise static key.
    pub noise_key: [u8; 32],
}

/// The current topology's node keys and the previous one's.
#[derive(Default)]
struct Admitted {
    current: HashSet<[u8; 32]>,
    previous: HashSet<[u8; 32]>,
}

struct LinkTable {
    secret: Zeroizing<[u8; 32]>,
    peers: RwLock<HashMap<NodeAddress, Peer>>,
    /// Noise keys admitted on incoming links.
    admitted: RwLock<Admitted>,
    queues: Mutex<HashMap<NodeAddress, mpsc::Sender<Vec<u8>>>>,
    queue_len: usize,
    stats: Arc<LinkStats>,
    /// Probability of dropping a packet on send, for fault tests (0 in production).
    loss: std::sync::atomic::AtomicU64,
}

/// Outgoing links to other nodes.
#[derive(Clone)]
pub struct Links {
    inner: Arc<LinkTable>,
}

impl Links {
    /// Links using our Noise key, with `queue_len` packets of buffer per peer.
    pub fn new(noise: &NodeSecret, queue_len: usize, stats: Arc<LinkStats>) -> Self {
        Self {
            inner: Arc::new(LinkTable {
                secret: Zeroizing::new(noise.to_bytes()),
                peers: RwLock::new(HashMap::new()),
                admitted: RwLock::new(Admitted::default()),
                queues: Mutex::new(HashMap::new()),
                queue_len,
                stats,
                loss: std::sync::atomic::AtomicU64::new(0f64.to_bits()),
            }),
        }
    }

    /// The counters.
    pub fn stats(&self) -> &LinkStats {
        &self.inner.stats
    }

    /// Learns every node's address and key from a topology; its keys (and the
    /// previous topology's) are admitted on incoming links.
    pub fn set_peers(&self, topology: &Topology) {
        let keys: HashSet<[u8; 32]> = topology
            .mixes
            .iter()
            .map(|m| m.noise_key.0)
            .chain(topology.gateways.iter().map(|g| g.noise_key.0))
            .collect();
        {
            let mut admitted = self.inner.admitted.write().unwrap_or_else(|e| e.into_inner());
            if admitted.current != keys {
                admitted.previous = std::mem::replace(&mut admitted.current, keys);
            }
        }
        let mut peers = HashMap::new();
        for m in &topology.mixes {
            peers.insert(NodeAddress(m.identity.0), Peer { addr: m.mix_address.clone(), noise_key: m.noise_key.0 });
        }
        for g in &topology.gateways {
            peers.insert(NodeAddress(g.identity.0), Peer { addr: g.mix_address.clone(), noise_key: g.noise_key.0 });
        }
        *self.inner.peers.write().unwrap_or_else(|e| e.into_inner()) = peers;
    }

    /// Adds or replaces one peer (admitting its key on incoming links too).
    pub fn set_peer(&self, node: NodeAddress, peer: Peer) {
        self.inner.admitted.write().unwrap_or_else(|e| e.into_inner()).current.insert(peer.noise_key);
        self.inner.peers.write().unwrap_or_else(|e| e.into_inner()).insert(node, peer);
    }

    /// Whether a link from the node with Noise static key `key` is accepted.
    pub fn admits(&self, key: &[u8; 32]) -> bool {
        let admitted = self.inner.admitted.read().unwrap_or_else(|e| e.into_inner());
        admitted.current.contains(key) || admitted.previous.contains(key)
    }

    /// Whether `node` is known.
    pub fn knows(&self, node: &NodeAddress) -> bool {
        self.inner.peers.read().unwrap_or_else(|e| e.into_inner()).contains_key(node)
    }

    /// Packets waiting in all queues.
    pub fn queued(&self) -> usize {
        let queues = self.inner.queues.lock().unwrap_or_else(|e| e.into_inner());
        queues.values().map(|q| q.max_capacity() - q.capacity()).sum()
    }

    /// Fault injection for tests: drop each packet sent with probability `p`.
    pub fn set_injected_loss(&self, p: f64) {
        self.inner.loss.store(p.to_bits(), std::sync::atomic::Ordering::Relaxed);
    }

    /// Queues a packet for `to`; drops (and counts) it if the queue is full or the
    /// peer unknown. Must be called within a tokio runtime.
    pub fn send(&self, to: NodeAddress, packet: Vec<u8>) {
        let loss = f64::from_bits(self.inner.loss.load(std::sync::atomic::Ordering::Relaxed));
        if loss > 0.0 && (getrandom::u64().unwrap_or(u64::MAX) as f64 / u64::MAX as f64) < loss {
            self.inner.stats.dropped_injected.inc();
            return;
        }
        if !self.knows(&to) {
            self.inner.stats.dropped_unknown_peer.inc();
            return;
        }
        let mut queues = self.inner.queues.lock().unwrap_or_else(|e| e.into_inner());
        let tx = queues.entry(to).or_insert_with(|| {
            let (tx, rx) = mpsc::channel(self.inner.queue_len);
            tokio::spawn(peer_task(self.inner.clone(), to, rx));
            tx
        });
        if tx.try_send(packet).is_err() {
            self.inner.stats.dropped_queue_full.inc();
        }
    }
}

async fn write_frame<W: AsyncWriteExt + Unpin>(w: &mut W, msg: &[u8]) -> std::io::Result<()> {
    w.write_all(&(msg.len() as u16).to_be_bytes()).await?;
    w.write_all(msg).await
}

async fn read_frame<R: AsyncReadExt + Unpin>(r: &mut R, buf: &mut Vec<u8>) -> std::io::Result<bool> {
    let mut len = [0u8; 2];
    match r.read_exact(&mut len).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(false),
        Err(e) => return Err(e),
    }
    let len = usize::from(u16::from_be_bytes(len));
    if len == 0 {
        return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, "empty frame"));
    }
    buf.resize(len, 0);
    r.read_exact(buf).await?;
    Ok(true)
}

fn noise_err(e: snow::Error) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string())
}

async fn connect(inner: &LinkTable, peer: &Peer) -> std::io::Result<(TcpStream, snow::TransportState)> {
    let mut stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(&peer.addr))
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timed out"))??;
    stream.set_nodelay(true)?;
    let handshake = async {
        let mut hs = snow::Builder::new(NOISE_PARAMS.parse().map_err(noise_err)?)
            .local_private_key(&inner.secret[..])
            .map_err(noise_err)?
            .remote_public_key(&peer.noise_key)
            .map_err(noise_err)?
            .build_initiator()
            .map_err(noise_err)?;
        let mut buf = vec![0u8; MAX_MESSAGE];
        let n = hs.write_message(&[], &mut buf).map_err(noise_err)?;
        write_frame(&mut stream, &buf[..n]).await?;
        let mut msg = Vec::new();
        if !read_frame(&mut stream, &mut msg).await? {
            return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "closed during handshake"));
        }
        hs.read_message(&msg, &mut buf).map_err(noise_err)?;
        let n = hs.write_message(&[], &mut buf).map_err(noise_err)?;
        write_frame(&mut stream, &buf[..n]).await?;
        let mut transport = hs.into_transport_mode().map_err(noise_err)?;
        // the responder admits us (our key is in its topology) or closes: packets
        // stay queued until a link is admitted
        if !read_frame(&mut stream, &mut msg).await? {
            return Err(std::io::Error::new(
                std::io::ErrorKind::PermissionDenied,
                "the peer closed the link: our key is not (yet) in its topology",
            ));
        }
        transport.read_message(&msg, &mut buf).map_err(noise_err)?;
        Ok(transport)
    };
    let transport = tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake)
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "handshake timed out"))?
        .inspect_err(|_| inner.stats.handshake_failures.inc())?;
    Ok((stream, transport))
}

async fn peer_task(inner: Arc<LinkTable>, node: NodeAddress, mut rx: mpsc::Receiver<Vec<u8>>) {
    let mut backoff = Duration::from_millis(50);
    let mut pending: Option<Vec<u8>> = None;
    loop {
        let peer = inner.peers.read().unwrap_or_else(|e| e.into_inner()).get(&node).cloned();
        let connected = match peer {
            Some(p) => connect(&inner, &p).await,
            None => Err(std::io::Error::new(std::io::ErrorKind::NotFound, "peer left the topology")),
        };
        let (stream, mut transport) = match connected {
            Ok(c) => c,
            Err(e) => {
                inner.stats.connect_failures.inc();
                tracing::debug!(peer = %node, error = %e, "link connect failed");
                if rx.is_closed() {
                    return;
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(2));
                continue;
            }
        };
        backoff = Duration::from_millis(50);
        let mut w = BufWriter::new(stream);
        let mut buf = vec![0u8; MAX_MESSAGE];
        let result: std::io::Result<()> = async {
            loop {
                let packet = match pending.take() {
                    Some(p) => p,
                    None => match rx.recv().await {
                        Some(p) => p,
                        None => return Ok(()),
                    },
                };
                let n = transport.write_message(&packet, &mut buf).map_err(noise_err)?;
                pending = Some(packet);
                write_frame(&mut w, &buf[..n]).await?;
                pending = None;
                inner.stats.sent.inc();
                if rx.is_empty() {
                    w.flush().await?;
                }
            }
        }
        .await;
        match result {
            Ok(()) => return,
            Err(e) => {
                // a packet caught mid-write is lost with the connection
                if pending.take().is_some() {
                    inner.stats.dropped_link_error.inc();
                }
                tracing::debug!(peer = %node, error = %e, "link broke; reconnecting");
            }
        }
    }
}

/// Most incoming links (connected or handshaking) a node holds at once; more are
/// closed at accept and counted as handshake failures.
pub const MAX_INBOUND_LINKS: usize = 1024;

/// Accepts node links on `listener` from the nodes `links` admits (see the module
/// docs) and calls `on_packet` with every packet received.
pub async fn serve<F>(listener: TcpListener, noise: NodeSecret, links: Links, on_packet: F)
where
    F: Fn(Vec<u8>) + Send + Sync + 'static,
{
    let on_packet = Arc::new(on_packet);
    let secret = Arc::new(Zeroizing::new(noise.to_bytes()));
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_INBOUND_LINKS));
    crate::accept_each(listener, move |stream, peer| {
        let on_packet = on_packet.clone();
        let links = links.clone();
        let secret = secret.clone();
        let slot = slots.clone().try_acquire_owned();
        async move {
            let Ok(_slot) = slot else {
                links.inner.stats.handshake_failures.inc();
                tracing::debug!(%peer, "too many node links: refused");
                return;
            };
            if let Err(e) = serve_conn(stream, &secret, &links, on_packet.as_ref()).await {
                tracing::debug!(%peer, error = %e, "node link closed");
            }
        }
    })
    .await;
}

async fn serve_conn<F: Fn(Vec<u8>)>(
    mut stream: TcpStream,
    secret: &[u8; 32],
    links: &Links,
    on_packet: &F,
) -> std::io::Result<()> {
    let stats = &links.inner.stats;
    let handshake = async {
        let mut hs = snow::Builder::new(NOISE_PARAMS.parse().map_err(noise_err)?)
            .local_private_key(secret)
            .map_err(noise_err)?
            .build_responder()
            .map_err(noise_err)?;
        let mut buf = vec![0u8; MAX_MESSAGE];
        let mut msg = Vec::new();
        for step in 0..3 {
            if step == 1 {
                let n = hs.write_message(&[], &mut buf).map_err(noise_err)?;
                write_frame(&mut stream, &buf[..n]).await?;
                continue;
            }
            if !read_frame(&mut stream, &mut msg).await? {
                return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "closed during handshake"));
            }
            hs.read_message(&msg, &mut buf).map_err(noise_err)?;
        }
        let remote: [u8; 32] = hs
            .get_remote_static()
            .and_then(|k| k.try_into().ok())
            .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidData, "no remote static key"))?;
        Ok((remote, hs.into_transport_mode().map_err(noise_err)?))
    };
    let (remote, mut transport) = match tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake).await {
        Ok(Ok(t)) => t,
        Ok(Err(e)) => {
            stats.handshake_failures.inc();
            return Err(e);
        }
        Err(_) => {
            stats.handshake_failures.inc();
            return Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "handshake timed out"));
        }
    };
    if !links.admits(&remote) {
        stats.rejected_peers.inc();
        return Err(std::io::Error::new(
            std::io::ErrorKind::PermissionDenied,
            format!("static key {} is not a node of the topology", mixnet_core::address::encode_key(&remote)),
        ));
    }
    // admitted: tell the initiator, which sends nothing before this
    let mut admitted = [0u8; 64];
    let n = transport.write_message(&[], &mut admitted).map_err(noise_err)?;
    write_frame(&mut stream, &admitted[..n]).await?;
    let (r, _w) = stream.split();
    let mut r = tokio::io::BufReader::with_capacity(64 * 1024, r);
    let mut msg = Vec::new();
    let mut buf = vec![0u8; MAX_MESSAGE];
    loop {
        match read_frame(&mut r, &mut msg).await {
            Ok(true) => {}
            Ok(false) => return Ok(()),
            Err(e) => {
                stats.bad_frames.inc();
                return Err(e);
            }
        }
        match transport.read_message(&msg, &mut buf) {
            Ok(n) => {
                stats.received.inc();
                on_packet(buf[..n].to_vec());
            }
            Err(e) => {
                stats.bad_frames.inc();
                return Err(noise_err(e));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use mixnet_core::topology::{Key32, MixNode, Topology};

    use super::*;

    fn links(secret: [u8; 32]) -> Links {
        Links::new(&NodeSecret::from_bytes(secret), 16, Arc::new(LinkStats::default()))
    }

    fn topology(noise_keys: &[[u8; 32]]) -> Topology {
        let mixes = noise_keys
            .iter()
            .enumerate()
            .map(|(i, k)| MixNode {
                identity: Key32([i as u8 + 1; 32]),
                sphinx_key: Key32([0; 32]),
                layer: 1,
                mix_address: format!("127.0.0.1:{}", 1000 + i),
                noise_key: Key32(*k),
            })
            .collect();
        Topology { epoch: 1, valid_until_ms: 0, mixes, gateways: Vec::new() }
    }

    #[tokio::test]
    async fn frames_round_trip_and_an_empty_frame_is_an_error() {
        let (mut a, mut b) = tokio::io::duplex(1 << 16);
        write_frame(&mut a, b"hello").await.unwrap();
        write_frame(&mut a, &[7; 2413]).await.unwrap();
        a.write_all(&[0, 0]).await.unwrap();
        drop(a);
        let mut buf = Vec::new();
        assert!(read_frame(&mut b, &mut buf).await.unwrap());
        assert_eq!(buf, b"hello");
        assert!(read_frame(&mut b, &mut buf).await.unwrap());
        assert_eq!(buf, [7; 2413]);
        assert_eq!(read_frame(&mut b, &mut buf).await.unwrap_err().kind(), std::io::ErrorKind::InvalidData);
        // a clean end between frames is not an error
        let (a, mut b) = tokio::io::duplex(16);
        drop(a);
        assert!(!read_frame(&mut b, &mut buf).await.unwrap());
    }

    #[tokio::test]
    async fn the_current_and_previous_topologies_keys_are_admitted_and_no_older_ones() {
        let l = links([1; 32]);
        l.set_peers(&topology(&[[10; 32]]));
        l.set_peers(&topology(&[[11; 32]]));
        assert!(l.admits(&[10; 32]) && l.admits(&[11; 32]));
        l.set_peers(&topology(&[[12; 32]]));
        assert!(!l.admits(&[10; 32]), "two topologies ago");
        assert!(l.admits(&[11; 32]) && l.admits(&[12; 32]));
        assert!(l.knows(&NodeAddress([1; 32])));
        // a packet for a node outside the topology is dropped and counted
        l.send(NodeAddress([99; 32]), vec![1, 2, 3]);
        assert_eq!(l.stats().dropped_unknown_peer.get(), 1);
        assert_eq!(l.queued(), 0);
    }

    #[tokio::test]
    async fn a_packet_crosses_an_admitted_link_and_a_stranger_is_refused() {
        let (a_secret, b_secret, stranger_secret) = ([1; 32], [2; 32], [3; 32]);
        let (a, b, stranger) = (links(a_secret), links(b_secret), links(stranger_secret));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let b_addr = listener.local_addr().unwrap().to_string();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(serve(listener, NodeSecret::from_bytes(b_secret), b.clone(), move |p| {
            let _ = tx.send(p);
        }));
        let b_peer = Peer { addr: b_addr, noise_key: NodeSecret::from_bytes(b_secret).public_key() };
        // B admits A only
        b.set_peer(
            NodeAddress([1; 32]),
            Peer { addr: "127.0.0.1:9".into(), noise_key: NodeSecret::from_bytes(a_secret).public_key() },
        );
        a.set_peer(NodeAddress([2; 32]), b_peer.clone());
        stranger.set_peer(NodeAddress([2; 32]), b_peer);

        stranger.send(NodeAddress([2; 32]), vec![0xEE; 100]);
        a.send(NodeAddress([2; 32]), vec![0xAA; 2413]);
        let got = tokio::time::timeout(Duration::from_secs(10), rx.recv()).await.unwrap().unwrap();
        assert_eq!(got, vec![0xAA; 2413], "only the admitted peer's packet arrives");
        // the refusal is only visible as a counter: poll it, with a deadline
        let refused = async {
            while b.stats().rejected_peers.get() == 0 {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        };
        tokio::time::timeout(Duration::from_secs(10), refused).await.expect("the stranger's link is refused");
        assert!(rx.try_recv().is_err(), "nothing from the stranger");
    }
}
