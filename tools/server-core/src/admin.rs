//! Moderator actions from the admin interface, and server-initiated moves.

use std::time::Instant;

use serde::{Deserialize, Serialize};
use stagebox_proto::close::CloseCode;
use stagebox_proto::signal::{FirmwareStatus, Role, ServerMsg, StageSnapshot};
use thiserror::Error;

use crate::server::{ServerStats, ServerTransmit, StageServer};

/// An admin request (the JSON body the admin interface accepts).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum AdminCmd {
    /// The stage and its members.
    Stage { stage: String },
    /// Invite an audience member to speak.
    Invite { stage: String, station: String },
    /// Move a speaker back to the audience (also withdraws an invitation).
    MoveToAudience { stage: String, station: String },
    /// Mute or unmute a member's audio at the server.
    Mute {
        stage: String,
        station: String,
        muted: bool,
    },
    /// Make a member the priority speaker, or clear it.
    Priority {
        stage: String,
        station: Option<String>,
    },
    /// Tell a station to reconnect (to `gateway` if given) and resume.
    Reconnect {
        station: String,
        gateway: Option<String>,
    },
    /// Remove a member from the stage: its connection is closed and its session ended (a
    /// station identifies afresh, as configured; a browser must open the link again).
    Kick { stage: String, station: String },
    /// End the stage: browsers are told and disconnected; stations stay, with their
    /// configured roles; hands, invitations, mutes and the priority speaker are cleared.
    EndStage { stage: String },
    /// Every stage with its members as a moderator's console shows them.
    Overview,
    /// Server counters.
    Stats,
    /// Every configured station: connected or not, on which stage, its firmware and update
    /// state as it last reported them.
    Stations,
}

/// One station in the admin view.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StationView {
    pub station_id: String,
    pub connected: bool,
    /// The stage of its session, while it has one.
    pub stage: Option<String>,
    pub firmware: Option<FirmwareStatus>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum AdminReply {
    Stage(StageSnapshot),
    Stats(ServerStats),
    Stations { stations: Vec<StationView> },
    Overview(crate::overview::Overview),
    Done { ok: bool },
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum AdminError {
    #[error("no stage {0:?}")]
    NoStage(String),
    #[error("station {0:?} is not on the stage")]
    NotMember(String),
    #[error("station {0:?} is not connected")]
    NotConnected(String),
    #[error("{0}")]
    NotAllowed(&'static str),
}

impl StageServer {
    pub fn handle_admin(&mut self, now: Instant, cmd: AdminCmd) -> Result<AdminReply, AdminError> {
        match cmd {
            AdminCmd::Stage { stage } => self
                .snapshot(&stage)
                .map(AdminReply::Stage)
                .ok_or(AdminError::NoStage(stage)),
            AdminCmd::Stats => Ok(AdminReply::Stats(self.stats)),
            AdminCmd::Overview => Ok(AdminReply::Overview(self.overview(now))),
            AdminCmd::Kick { stage, station } => {
                let session = self
                    .stages
                    .get(&stage)
                    .ok_or_else(|| AdminError::NoStage(stage.clone()))?
                    .members
                    .get(&station)
                    .ok_or_else(|| AdminError::NotMember(station.clone()))?
                    .session;
                self.remove_session(now, session, CloseCode::Removed, "removed by a moderator");
                Ok(AdminReply::Done { ok: true })
            }
            AdminCmd::EndStage { stage } => self.end_stage(now, &stage),
            AdminCmd::Stations => Ok(AdminReply::Stations {
                stations: self.station_views(),
            }),
            AdminCmd::Invite { stage, station } => self.change_member(&stage, &station, |m| {
                if m.role != Role::Audience {
                    return Err(AdminError::NotAllowed(
                        "only audience members can be invited",
                    ));
                }
                m.invited = true;
                Ok(())
            }),
            AdminCmd::MoveToAudience { stage, station } => {
                self.change_member(&stage, &station, |m| {
                    if m.role == Role::Moderator {
                        return Err(AdminError::NotAllowed("moderators stay moderators"));
                    }
                    m.role = Role::Audience;
                    m.invited = false;
                    m.speaking = false;
                    Ok(())
                })
            }
            AdminCmd::Mute {
                stage,
                station,
                muted,
            } => {
                // Muted, a member's voice stops at every listener: so does its indicator.
                let session = self
                    .stages
                    .get(&stage)
                    .and_then(|r| r.members.get(&station))
                    .map(|m| m.session);
                if let (true, Some(key)) = (muted, session) {
                    self.set_speaking(key, false);
                }
                self.change_member(&stage, &station, |m| {
                    m.server_muted = muted;
                    Ok(())
                })
            }
            AdminCmd::Priority { stage, station } => {
                let rec = self
                    .stages
                    .get(&stage)
                    .ok_or_else(|| AdminError::NoStage(stage.clone()))?;
                if let Some(id) = &station
                    && !rec.members.contains_key(id)
                {
                    return Err(AdminError::NotMember(id.clone()));
                }
                if let Some(rec) = self.stages.get_mut(&stage) {
                    rec.priority = station;
                }
                let ssrc = self.snapshot(&stage).and_then(|s| s.priority_ssrc);
                self.broadcast(&stage, None, &ServerMsg::Priority { ssrc });
                Ok(AdminReply::Done { ok: true })
            }
            AdminCmd::Reconnect { station, gateway } => {
                let conn = self
                    .sessions
                    .values()
                    .find(|s| s.station_id == station)
                    .and_then(|s| s.conn)
                    .ok_or_else(|| AdminError::NotConnected(station.clone()))?;
                self.send(
                    conn,
                    ServerMsg::Reconnect {
                        reason: "requested by the server".into(),
                        gateway,
                    },
                );
                self.transmits.push_back(ServerTransmit::Close {
                    conn,
                    code: CloseCode::Reconnect.as_u16(),
                });
                self.handle_closed(now, conn);
                Ok(AdminReply::Done { ok: true })
            }
        }
    }

    /// Closes session `key`'s connection with `code` (if it has one) and ends the session.
    fn remove_session(&mut self, now: Instant, key: u64, code: CloseCode, message: &str) {
        if let Some(conn) = self.sessions.get(&key).and_then(|s| s.conn) {
            self.refuse(now, conn, code, message);
        }
        self.end_session(key);
    }

    fn end_stage(&mut self, now: Instant, stage: &str) -> Result<AdminReply, AdminError> {
        let rec = self
            .stages
            .get(stage)
            .ok_or_else(|| AdminError::NoStage(stage.into()))?;
        let browsers: Vec<u64> = rec
            .members
            .values()
            .map(|m| m.session)
            .filter(|k| {
                self.sessions
                    .get(k)
                    .is_some_and(|s| matches!(s.media, crate::server::MediaLink::Browser(_)))
            })
            .collect();
        for key in browsers {
            self.remove_session(now, key, CloseCode::StageEnded, "the stage has ended");
        }
        let Some(rec) = self.stages.get_mut(stage) else {
            return Err(AdminError::NoStage(stage.into()));
        };
        let had_priority = rec.priority.take().is_some();
        let mut changed = Vec::new();
        for (id, m) in rec.members.iter_mut() {
            let configured = self.cfg.stations.get(id).map_or(Role::Audience, |c| c.role);
            let before = (m.role, m.hand_raised, m.invited, m.server_muted);
            m.role = configured;
            m.hand_raised = None;
            m.invited = false;
            m.server_muted = false;
            m.speaking &= configured.can_speak();
            if before != (m.role, m.hand_raised, m.invited, m.server_muted) {
                changed.push(id.clone());
            }
        }
        if had_priority {
            self.broadcast(stage, None, &ServerMsg::Priority { ssrc: None });
        }
        for id in changed {
            self.announce_member(stage, &id);
        }
        Ok(AdminReply::Done { ok: true })
    }

    fn station_views(&self) -> Vec<StationView> {
        self.cfg
            .stations
            .keys()
            .map(|id| {
                let session = self.sessions.values().find(|s| &s.station_id == id);
                StationView {
                    station_id: id.clone(),
                    connected: session.is_some_and(|s| s.conn.is_some()),
                    stage: session.map(|s| s.stage.clone()),
                    firmware: self.firmware.get(id).cloned(),
                }
            })
            .collect()
    }

    fn change_member(
        &mut self,
        stage: &str,
        station: &str,
        change: impl FnOnce(&mut crate::server::MemberRec) -> Result<(), AdminError>,
    ) -> Result<AdminReply, AdminError> {
        let rec = self
            .stages
            .get_mut(stage)
            .ok_or_else(|| AdminError::NoStage(stage.into()))?;
        let m = rec
            .members
            .get_mut(station)
            .ok_or_else(|| AdminError::NotMember(station.into()))?;
        change(m)?;
        self.announce_member(stage, station);
        Ok(AdminReply::Done { ok: true })
    }
}
