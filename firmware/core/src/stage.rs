//! The stage as this station sees it: its own role, hand, invitation and mute, who else is
//! there, who is speaking and who has priority. Applies the server's snapshot and deltas and
//! reports what changed for this station. Bounded: a server cannot grow it past
//! [`MAX_MEMBERS`] members (its own entry always kept) and as many talkers.

use std::collections::{BTreeMap, BTreeSet};

use stagebox_proto::signal::{Member, Role, ServerMsg};

/// A change that matters to this station.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StageEvent {
    /// This station's entry changed (role, hand, invitation or mute).
    SelfChanged {
        before: Option<Member>,
        after: Option<Member>,
    },
    /// The priority speaker changed.
    Priority(Option<u32>),
    /// Someone started or stopped speaking.
    Speaking {
        station_id: String,
        ssrc: u32,
        speaking: bool,
    },
    /// Someone joined, left or changed.
    Roster,
}

/// Members the view holds at most, this station included; more from a server are ignored (a
/// station needs its own entry; the rest is for display and logs).
pub const MAX_MEMBERS: usize = 1024;

#[derive(Debug, Clone, Default)]
pub struct StageView {
    station_id: String,
    members: BTreeMap<String, Member>,
    priority_ssrc: Option<u32>,
    /// SSRCs in a talk spurt.
    speaking: BTreeSet<u32>,
}

impl StageView {
    pub fn new(station_id: &str) -> StageView {
        StageView {
            station_id: station_id.into(),
            ..Default::default()
        }
    }

    /// This station's own entry, once the server sent it.
    pub fn me(&self) -> Option<&Member> {
        self.members.get(&self.station_id)
    }

    pub fn role(&self) -> Option<Role> {
        self.me().map(|m| m.role)
    }

    pub fn members(&self) -> impl Iterator<Item = &Member> {
        self.members.values()
    }

    pub fn priority_ssrc(&self) -> Option<u32> {
        self.priority_ssrc
    }

    pub fn is_speaking(&self, ssrc: u32) -> bool {
        self.speaking.contains(&ssrc)
    }

    /// Applies a stage message; returns what changed, in order.
    pub fn handle_message(&mut self, msg: ServerMsg) -> Vec<StageEvent> {
        let before = self.me().cloned();
        let mut events = Vec::new();
        match msg {
            ServerMsg::Stage(snapshot) => {
                let me = &self.station_id;
                let (mine, others): (Vec<Member>, Vec<Member>) = snapshot
                    .members
                    .into_iter()
                    .partition(|m| &m.station_id == me);
                self.members = mine
                    .into_iter()
                    .take(1)
                    .chain(others.into_iter().take(MAX_MEMBERS - 1))
                    .map(|m| (m.station_id.clone(), m))
                    .collect();
                self.speaking.clear();
                self.set_priority(snapshot.priority_ssrc, &mut events);
                events.push(StageEvent::Roster);
            }
            ServerMsg::MemberUpdate(member) => {
                let room = self.members.len() < MAX_MEMBERS - usize::from(self.me().is_none());
                if room
                    || member.station_id == self.station_id
                    || self.members.contains_key(&member.station_id)
                {
                    self.members.insert(member.station_id.clone(), member);
                    events.push(StageEvent::Roster);
                }
            }
            ServerMsg::MemberLeft { station_id } => {
                if let Some(m) = self.members.remove(&station_id) {
                    self.speaking.remove(&m.ssrc);
                }
                events.push(StageEvent::Roster);
            }
            ServerMsg::Priority { ssrc } => self.set_priority(ssrc, &mut events),
            ServerMsg::Speaking {
                station_id,
                ssrc,
                speaking,
            } => {
                if !speaking {
                    self.speaking.remove(&ssrc);
                } else if self.speaking.len() < MAX_MEMBERS {
                    self.speaking.insert(ssrc);
                }
                events.push(StageEvent::Speaking {
                    station_id,
                    ssrc,
                    speaking,
                });
            }
            _ => {}
        }
        let after = self.me().cloned();
        if before != after {
            events.insert(0, StageEvent::SelfChanged { before, after });
        }
        events
    }

    fn set_priority(&mut self, ssrc: Option<u32>, events: &mut Vec<StageEvent>) {
        if self.priority_ssrc != ssrc {
            self.priority_ssrc = ssrc;
            events.push(StageEvent::Priority(ssrc));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use stagebox_proto::signal::StageSnapshot;

    fn member(id: &str, role: Role) -> Member {
        Member {
            station_id: id.into(),
            role,
            hand_raised: false,
            hand_order: None,
            invited: false,
            server_muted: false,
            ssrc: id.len() as u32,
            connected: true,
            name: None,
        }
    }

    #[test]
    fn snapshot_then_deltas() {
        let mut v = StageView::new("me");
        let ev = v.handle_message(ServerMsg::Stage(StageSnapshot {
            stage: "s".into(),
            members: vec![member("me", Role::Audience), member("mod", Role::Moderator)],
            priority_ssrc: Some(3),
        }));
        assert!(
            matches!(&ev[0], StageEvent::SelfChanged { before: None, after: Some(m) } if m.role == Role::Audience)
        );
        assert!(ev.contains(&StageEvent::Priority(Some(3))));
        assert_eq!(v.role(), Some(Role::Audience));

        let mut invited = member("me", Role::Audience);
        invited.invited = true;
        let ev = v.handle_message(ServerMsg::MemberUpdate(invited));
        assert!(matches!(&ev[0], StageEvent::SelfChanged { after: Some(m), .. } if m.invited));

        // Someone else changing is not a self change.
        let ev = v.handle_message(ServerMsg::MemberUpdate(member("other", Role::Audience)));
        assert_eq!(ev, vec![StageEvent::Roster]);
        assert_eq!(v.members().count(), 3);

        let ev = v.handle_message(ServerMsg::Speaking {
            station_id: "mod".into(),
            ssrc: 3,
            speaking: true,
        });
        assert_eq!(ev.len(), 1);
        assert!(v.is_speaking(3));
        v.handle_message(ServerMsg::MemberLeft {
            station_id: "mod".into(),
        });
        assert!(!v.is_speaking(3));
        let ev = v.handle_message(ServerMsg::Priority { ssrc: None });
        assert_eq!(ev, vec![StageEvent::Priority(None)]);
    }

    fn with_ssrc(id: &str, ssrc: u32) -> Member {
        Member {
            ssrc,
            ..member(id, Role::Audience)
        }
    }

    #[test]
    fn a_member_flood_is_bounded_and_the_station_keeps_its_own_entry() {
        let mut view = StageView::new("me");
        for i in 0..(3 * MAX_MEMBERS as u32) {
            view.handle_message(ServerMsg::MemberUpdate(with_ssrc(&format!("m-{i}"), i)));
            view.handle_message(ServerMsg::Speaking {
                station_id: format!("m-{i}"),
                ssrc: i,
                speaking: true,
            });
        }
        assert_eq!(
            view.members().count(),
            MAX_MEMBERS - 1,
            "room left for itself"
        );
        assert!(view.speaking.len() <= MAX_MEMBERS);
        view.handle_message(ServerMsg::MemberUpdate(with_ssrc("me", 7)));
        assert_eq!(view.me().map(|m| m.ssrc), Some(7));
        assert_eq!(view.members().count(), MAX_MEMBERS);
        // A huge snapshot keeps this station and the first others.
        let mut members: Vec<Member> = (0..2 * MAX_MEMBERS as u32)
            .map(|i| with_ssrc(&format!("s-{i}"), i))
            .collect();
        members.push(with_ssrc("me", 9));
        view.handle_message(ServerMsg::Stage(StageSnapshot {
            stage: "hall".into(),
            members,
            priority_ssrc: None,
        }));
        assert_eq!(view.members().count(), MAX_MEMBERS);
        assert_eq!(view.me().map(|m| m.ssrc), Some(9));
        // Talk spurts that end are forgotten.
        view.handle_message(ServerMsg::Speaking {
            station_id: "s-1".into(),
            ssrc: 1,
            speaking: true,
        });
        assert!(view.is_speaking(1));
        view.handle_message(ServerMsg::Speaking {
            station_id: "s-1".into(),
            ssrc: 1,
            speaking: false,
        });
        assert!(!view.is_speaking(1));
        assert!(view.speaking.is_empty());
    }
}
