//! The stage as this station sees it: its own role, hand, invitation and mute, who else is
//! there, who is speaking and who has priority. Applies the server's snapshot and deltas and
//! reports what changed for this station.

use std::collections::BTreeMap;

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

#[derive(Debug, Clone, Default)]
pub struct StageView {
    station_id: String,
    members: BTreeMap<String, Member>,
    priority_ssrc: Option<u32>,
    speaking: BTreeMap<u32, bool>,
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
        self.speaking.get(&ssrc).copied().unwrap_or(false)
    }

    /// Applies a stage message; returns what changed, in order.
    pub fn handle_message(&mut self, msg: ServerMsg) -> Vec<StageEvent> {
        let before = self.me().cloned();
        let mut events = Vec::new();
        match msg {
            ServerMsg::Stage(snapshot) => {
                self.members = snapshot
                    .members
                    .into_iter()
                    .map(|m| (m.station_id.clone(), m))
                    .collect();
                self.speaking.clear();
                self.set_priority(snapshot.priority_ssrc, &mut events);
                events.push(StageEvent::Roster);
            }
            ServerMsg::MemberUpdate(member) => {
                self.members.insert(member.station_id.clone(), member);
                events.push(StageEvent::Roster);
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
                self.speaking.insert(ssrc, speaking);
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
}
