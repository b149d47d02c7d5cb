//! Sealed datagrams waiting for the plumbing, in buffers allocated once: a slot per datagram
//! of the largest fan-out seen, reused for every packet after it. Forwarding allocates nothing
//! per datagram; the outbox is bounded ([`MAX_WAITING`]), and what does not fit is dropped
//! and counted as the network would.

use std::net::{Ipv4Addr, SocketAddr};

use stagebox_proto::media::MAX_DATAGRAM;

/// Datagrams waiting at most between two drains.
pub const MAX_WAITING: usize = 4096;

struct Slot {
    dest: SocketAddr,
    len: usize,
    buf: Box<[u8; MAX_DATAGRAM]>,
}

#[derive(Default)]
pub(crate) struct Outbox {
    slots: Vec<Slot>,
    /// Slots holding a datagram: `[next, filled)` wait to be taken.
    filled: usize,
    next: usize,
    pub(crate) dropped: u64,
}

impl Outbox {
    /// Seals a datagram for `dest` into the next free buffer with `seal`, which returns the
    /// length written (or `None`: nothing to send). `false` when the outbox is full.
    pub(crate) fn push(
        &mut self,
        dest: SocketAddr,
        seal: impl FnOnce(&mut [u8; MAX_DATAGRAM]) -> Option<usize>,
    ) -> bool {
        if self.filled == MAX_WAITING {
            self.dropped += 1;
            return false;
        }
        if self.filled == self.slots.len() {
            self.slots.push(Slot {
                dest: SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)),
                len: 0,
                buf: Box::new([0; MAX_DATAGRAM]),
            });
        }
        let Some(slot) = self.slots.get_mut(self.filled) else {
            return false;
        };
        match seal(&mut slot.buf) {
            Some(len) => {
                slot.dest = dest;
                slot.len = len.min(MAX_DATAGRAM);
                self.filled += 1;
                true
            }
            None => true,
        }
    }

    /// The next datagram to send. Once all are taken the buffers are free again.
    pub(crate) fn pop(&mut self) -> Option<(SocketAddr, &[u8])> {
        if self.next == self.filled {
            self.next = 0;
            self.filled = 0;
            return None;
        }
        let slot = self.slots.get(self.next)?;
        self.next += 1;
        Some((slot.dest, slot.buf.get(..slot.len).unwrap_or(&[])))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_are_reused_and_the_outbox_is_bounded() {
        let mut out = Outbox::default();
        let dest = SocketAddr::from(([192, 0, 2, 1], 5000));
        for round in 0..3u8 {
            for i in 0..3u8 {
                assert!(out.push(dest, |b| {
                    b[0] = round;
                    b[1] = i;
                    Some(2)
                }));
            }
            let mut got = Vec::new();
            while let Some((d, bytes)) = out.pop() {
                assert_eq!(d, dest);
                got.push(bytes.to_vec());
            }
            assert_eq!(got, vec![vec![round, 0], vec![round, 1], vec![round, 2]]);
        }
        assert_eq!(out.slots.len(), 3, "allocated once for the largest fan-out");
        for _ in 0..MAX_WAITING {
            assert!(out.push(dest, |_| Some(1)));
        }
        assert!(!out.push(dest, |_| Some(1)));
        assert_eq!(out.dropped, 1);
    }
}
