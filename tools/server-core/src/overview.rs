//! What a moderator's console shows: every stage, its members with their kind, role and
//! state, and the hand queue — oldest raised hand first, with how long each has waited.

use std::time::Instant;

use serde::Serialize;
use stagebox_proto::signal::{FirmwareStatus, LinkStats, Role};

use crate::server::{MediaLink, StageServer};

/// Every stage.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Overview {
    pub stages: Vec<StageOverview>,
}

/// One stage.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StageOverview {
    pub stage: String,
    /// Whether people in browsers can join it (it has a link).
    pub browsers_may_join: bool,
    /// The member who is priority speaker.
    pub priority: Option<String>,
    /// Members with a raised hand, oldest first.
    pub hands: Vec<String>,
    pub members: Vec<MemberOverview>,
    /// The soundboard clip playing now: its name and how far it is, seconds.
    pub clip_playing: Option<(String, f64)>,
}

/// A station, or a person in a browser.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MemberKind {
    Station,
    Browser,
}

/// One member.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MemberOverview {
    /// The station's id, or a browser's participant id.
    pub id: String,
    /// The name a person in a browser gave (untrusted text).
    pub name: Option<String>,
    pub kind: MemberKind,
    pub role: Role,
    pub connected: bool,
    /// How long the raised hand has waited, in milliseconds; `None` while no hand is up.
    pub hand_waiting_ms: Option<u64>,
    pub invited: bool,
    pub muted: bool,
    pub speaking: bool,
    /// The loss this member last reported hearing, percent.
    pub reported_loss_percent: u8,
    /// A station's firmware and update state, as it last reported them.
    pub firmware: Option<FirmwareStatus>,
    /// The member's link and playout, as it last reported them.
    pub link: Option<LinkStats>,
}

impl StageServer {
    /// The console's view at `now`.
    pub fn overview(&self, now: Instant) -> Overview {
        let stages = self
            .stages
            .iter()
            .map(|(stage, rec)| {
                let mut hands: Vec<(u64, &String)> = rec
                    .members
                    .iter()
                    .filter_map(|(id, m)| Some((m.hand_raised?.0, id)))
                    .collect();
                hands.sort();
                let members = rec
                    .members
                    .iter()
                    .filter_map(|(id, m)| {
                        let s = self.sessions.get(&m.session)?;
                        let kind = match s.media {
                            MediaLink::Station(_) => MemberKind::Station,
                            MediaLink::Browser(_) => MemberKind::Browser,
                        };
                        Some(MemberOverview {
                            id: id.clone(),
                            name: s.name.clone(),
                            kind,
                            role: m.role,
                            connected: s.conn.is_some(),
                            hand_waiting_ms: m.hand_raised.map(|(_, t)| {
                                u64::try_from(now.saturating_duration_since(t).as_millis())
                                    .unwrap_or(u64::MAX)
                            }),
                            invited: m.invited,
                            muted: m.server_muted,
                            speaking: m.speaking,
                            reported_loss_percent: m.reported_loss,
                            firmware: (kind == MemberKind::Station)
                                .then(|| self.firmware.get(id).cloned())
                                .flatten(),
                            link: s.link.clone(),
                        })
                    })
                    .collect();
                StageOverview {
                    stage: stage.clone(),
                    browsers_may_join: self.cfg.stage_links.contains_key(stage),
                    priority: rec.priority.clone(),
                    hands: hands.into_iter().map(|(_, id)| id.clone()).collect(),
                    members,
                    clip_playing: self.clip_playing(stage),
                }
            })
            .collect();
        Overview { stages }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::time::{Duration, Instant};

    use stagebox_proto::close::CloseCode;
    use stagebox_proto::signal::{ClientMsg, LinkStats, Role, ServerMsg};

    use super::MemberKind;
    use crate::{
        AdminCmd, AdminReply, ConnId, SeededEntropy, ServerConfig, ServerTransmit, StageServer,
        StationCredential,
    };

    fn server() -> StageServer {
        let mut cfg = ServerConfig::new("127.0.0.1", 50000);
        cfg.stages.push("hall".into());
        cfg.stage_links.insert("hall".into(), "link-hall".into());
        for (id, role) in [("mod", Role::Moderator), ("floor", Role::Audience)] {
            cfg.stations.insert(
                id.into(),
                StationCredential {
                    token: format!("token-{id}"),
                    role,
                },
            );
        }
        StageServer::new(cfg, Box::new(SeededEntropy::new(7)))
    }

    /// Station `id` (token `token-ID`) identifies on stage "hall" over connection `conn`.
    pub(crate) fn station(s: &mut StageServer, t: Instant, conn: u64, id: &str) {
        s.handle_open(t, ConnId(conn));
        s.handle_message(
            t,
            ConnId(conn),
            ClientMsg::Identify {
                v: 1,
                station_id: id.into(),
                token: format!("token-{id}"),
                stage: "hall".into(),
                modes: vec!["chacha20_poly1305_rtpsize".into()],
                audio_formats: vec![],
            },
        );
    }

    /// A person joined from a browser: its participant id.
    fn browser(s: &mut StageServer, t: Instant, conn: u64, name: &str) -> String {
        s.handle_open(t, ConnId(conn));
        s.handle_message(
            t,
            ConnId(conn),
            ClientMsg::JoinWeb {
                v: 1,
                stage: "hall".into(),
                link: "link-hall".into(),
                name: name.into(),
            },
        );
        let mut id = None;
        while let Some(x) = s.poll_transmit() {
            if let ServerTransmit::Text {
                msg: ServerMsg::WebReady { participant_id, .. },
                ..
            } = x
            {
                id = Some(participant_id);
            }
        }
        id.unwrap_or_default()
    }

    fn overview(s: &mut StageServer, t: Instant) -> super::StageOverview {
        match s.handle_admin(t, AdminCmd::Overview) {
            Ok(AdminReply::Overview(o)) => o.stages.into_iter().next().unwrap(),
            other => panic!("{other:?}"),
        }
    }

    /// Close codes sent, per connection.
    fn closes(s: &mut StageServer) -> Vec<(u64, u16)> {
        let mut out = Vec::new();
        while let Some(x) = s.poll_transmit() {
            if let ServerTransmit::Close { conn, code } = x {
                out.push((conn.0, code));
            }
        }
        out
    }

    #[allow(clippy::disallowed_methods)]
    fn start() -> Instant {
        Instant::now()
    }

    #[test]
    fn the_hand_queue_is_oldest_first_with_how_long_each_waited() {
        let mut s = server();
        let t = start();
        station(&mut s, t, 1, "mod");
        station(&mut s, t, 2, "floor");
        let web = browser(&mut s, t, 3, "Ana <script>");
        let raise = ClientMsg::RaiseHand { raised: true };
        s.handle_message(t + Duration::from_secs(1), ConnId(3), raise.clone());
        s.handle_message(t + Duration::from_secs(4), ConnId(2), raise);
        // A moderator's raised hand means nothing: only the audience queues.
        s.handle_message(
            t + Duration::from_secs(5),
            ConnId(1),
            ClientMsg::RaiseHand { raised: true },
        );
        let o = overview(&mut s, t + Duration::from_secs(10));
        assert_eq!(o.hands, vec![web.clone(), "floor".to_string()]);
        assert!(o.browsers_may_join);
        let member = |id: &str| o.members.iter().find(|m| m.id == id).unwrap().clone();
        assert_eq!(member(&web).hand_waiting_ms, Some(9000));
        assert_eq!(member("floor").hand_waiting_ms, Some(6000));
        assert_eq!(member("mod").hand_waiting_ms, None);
        assert_eq!(member(&web).kind, MemberKind::Browser);
        assert_eq!(member(&web).name.as_deref(), Some("Ana <script>"));
        assert_eq!(member("floor").kind, MemberKind::Station);
        assert_eq!(member("mod").role, Role::Moderator);

        // Lowered, the hand leaves the queue; raised again, it waits from the start.
        let later = t + Duration::from_secs(11);
        s.handle_message(later, ConnId(3), ClientMsg::RaiseHand { raised: false });
        s.handle_message(later, ConnId(3), ClientMsg::RaiseHand { raised: true });
        let o = overview(&mut s, t + Duration::from_secs(12));
        assert_eq!(o.hands, vec!["floor".to_string(), web.clone()]);
        let waited = o.members.iter().find(|m| m.id == web).unwrap();
        assert_eq!(waited.hand_waiting_ms, Some(1000));

        // Invited and accepted: on stage, out of the queue; its voice shows.
        s.handle_admin(
            later,
            AdminCmd::Invite {
                stage: "hall".into(),
                station: "floor".into(),
            },
        )
        .unwrap();
        s.handle_message(later, ConnId(2), ClientMsg::InviteResponse { accept: true });
        s.handle_message(later, ConnId(2), ClientMsg::Speaking { speaking: true });
        let link = LinkStats {
            jitter_ms: Some(3),
            concealed_frames: Some(7),
            led: Some("live".into()),
            ..Default::default()
        };
        s.handle_message(later, ConnId(2), ClientMsg::LinkStats(link.clone()));
        let o = overview(&mut s, later);
        assert_eq!(o.hands, vec![web]);
        let floor = o.members.iter().find(|m| m.id == "floor").unwrap();
        assert_eq!((floor.role, floor.speaking), (Role::Speaker, true));
        assert_eq!(floor.link.as_ref(), Some(&link), "as it reported them");
    }

    #[test]
    fn a_kick_ends_the_members_session_and_the_end_of_a_stage_resets_it() {
        let mut s = server();
        let t = start();
        station(&mut s, t, 1, "mod");
        station(&mut s, t, 2, "floor");
        let ana = browser(&mut s, t, 3, "Ana");
        let bo = browser(&mut s, t, 4, "Bo");
        closes(&mut s);
        let kick = |station: &str| AdminCmd::Kick {
            stage: "hall".into(),
            station: station.into(),
        };
        s.handle_admin(t, kick(&ana)).unwrap();
        assert_eq!(closes(&mut s), vec![(3, CloseCode::Removed.as_u16())]);
        assert!(overview(&mut s, t).members.iter().all(|m| m.id != ana));
        assert!(s.handle_admin(t, kick(&ana)).is_err(), "already gone");

        // The station on stage, muted, priority; a hand up; then the stage ends.
        for cmd in [
            AdminCmd::Invite {
                stage: "hall".into(),
                station: "floor".into(),
            },
            AdminCmd::Priority {
                stage: "hall".into(),
                station: Some("mod".into()),
            },
        ] {
            s.handle_admin(t, cmd).unwrap();
        }
        s.handle_message(t, ConnId(2), ClientMsg::InviteResponse { accept: true });
        s.handle_admin(
            t,
            AdminCmd::Mute {
                stage: "hall".into(),
                station: "floor".into(),
                muted: true,
            },
        )
        .unwrap();
        s.handle_message(t, ConnId(4), ClientMsg::RaiseHand { raised: true });
        closes(&mut s);
        s.handle_admin(
            t,
            AdminCmd::EndStage {
                stage: "hall".into(),
            },
        )
        .unwrap();
        assert_eq!(closes(&mut s), vec![(4, CloseCode::StageEnded.as_u16())]);
        let o = overview(&mut s, t);
        assert!(o.members.iter().all(|m| m.id != bo));
        assert!(o.hands.is_empty());
        assert_eq!(o.priority, None);
        let roles: Vec<(String, Role, bool)> = o
            .members
            .iter()
            .map(|m| (m.id.clone(), m.role, m.muted))
            .collect();
        assert_eq!(
            roles,
            vec![
                ("floor".into(), Role::Audience, false),
                ("mod".into(), Role::Moderator, false)
            ],
            "browsers gone, stations back to their configured roles"
        );
        assert!(
            s.handle_admin(
                t,
                AdminCmd::EndStage {
                    stage: "nowhere".into()
                }
            )
            .is_err()
        );
    }
}
