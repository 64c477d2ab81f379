//! The mix node server ([`mix`]) and the directory authority ([`directory`]).
//! Each runs standalone (`mix-node mix --config …`, `mix-node directory --config …`)
//! or embedded (localnet).

pub mod directory;
pub mod mix;
