//! Admission by address: live connections per address (per /64 for IPv6), capped, each held
//! as a [`ClientSlot`] that gives its place back however the connection ends. The hub counts
//! WebSocket sessions with one (`--ws-per-ip`); the accept loop every connection with
//! another (`--connections-per-ip`).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// Live connections, per address group and in all. Cheap to clone: clones share the
/// counts.
#[derive(Clone, Default)]
pub struct Connections {
    shared: Arc<Shared>,
}

#[derive(Default)]
struct Shared {
    /// Live connections per address group (see [`address_group`]); groups at 0 are removed.
    per_group: Mutex<HashMap<IpAddr, usize>>,
    live: AtomicUsize,
}

impl Shared {
    /// The counts stay consistent even if a holder panicked (every change completes before
    /// anything that could panic), so a poisoned lock is simply taken over.
    fn per_group(&self) -> MutexGuard<'_, HashMap<IpAddr, usize>> {
        self.per_group
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// A held slot: counted in [`Connections::live`] and against its address's cap
/// until dropped, which happens however the connection ends (close, error, panic, abort).
pub struct ClientSlot {
    shared: Arc<Shared>,
    group: IpAddr,
}

impl Drop for ClientSlot {
    fn drop(&mut self) {
        let mut per_group = self.shared.per_group();
        if let Some(count) = per_group.get_mut(&self.group) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                per_group.remove(&self.group);
            }
        }
        self.shared.live.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The key the per-address cap counts under: the address itself for IPv4 (and IPv4-mapped
/// IPv6), the /64 for IPv6, since one IPv6 host commonly holds a whole /64.
pub fn address_group(peer: IpAddr) -> IpAddr {
    match peer.to_canonical() {
        IpAddr::V6(v6) => {
            let mut segments = v6.segments();
            segments[4..].fill(0);
            IpAddr::V6(segments.into())
        }
        v4 => v4,
    }
}

impl Connections {
    /// A slot for `peer`, or `None` when its address group already holds `max_per_ip`.
    pub fn admit(&self, peer: IpAddr, max_per_ip: usize) -> Option<ClientSlot> {
        let group = address_group(peer);
        let mut per_group = self.shared.per_group();
        let count = per_group.entry(group).or_insert(0);
        if *count >= max_per_ip {
            if *count == 0 {
                per_group.remove(&group);
            }
            return None;
        }
        *count += 1;
        self.shared.live.fetch_add(1, Ordering::Relaxed);
        Some(ClientSlot {
            shared: self.shared.clone(),
            group,
        })
    }

    /// Connections held right now (a gauge).
    pub fn live(&self) -> usize {
        self.shared.live.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    #[test]
    fn the_per_address_cap_is_released_when_a_slot_drops() {
        let connections = Connections::default();
        let alice = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
        let bob = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2));
        let first = connections.admit(alice, 2).unwrap();
        let _second = connections.admit(alice, 2).unwrap();
        assert!(connections.admit(alice, 2).is_none());
        let _other = connections.admit(bob, 2).unwrap();
        assert_eq!(connections.live(), 3);
        drop(first);
        assert_eq!(connections.live(), 2);
        assert!(connections.admit(alice, 2).is_some());
    }

    #[test]
    fn a_cap_of_zero_admits_nobody_and_remembers_nothing() {
        let connections = Connections::default();
        let alice = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
        assert!(connections.admit(alice, 0).is_none());
        assert!(connections.shared.per_group().is_empty());
        assert_eq!(connections.live(), 0);
    }

    #[test]
    fn ipv6_peers_are_capped_per_64_and_mapped_ipv4_as_ipv4() {
        let a: Ipv6Addr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: Ipv6Addr = "2001:db8:1:2:bbbb::9".parse().unwrap();
        assert_eq!(address_group(a.into()), address_group(b.into()));
        let mapped: Ipv6Addr = "::ffff:10.0.0.1".parse().unwrap();
        assert_eq!(
            address_group(mapped.into()),
            IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1))
        );
    }
}
