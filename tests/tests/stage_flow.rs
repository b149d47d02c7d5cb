//! Hand raise, invitation, PTT, mute, priority and stepping down, through the buttons of a
//! station core and the server core, in virtual time.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use stagebox_core::redundancy::{LossProtection, ProtectionMode};
use stagebox_core::{ButtonId, LedState, StationEvent};
use stagebox_proto::signal::Role;
use stagebox_server_core::{AdminCmd, AdminReply};
use stagebox_tests::netsim::{Net, StationIdx};
use stagebox_tests::{ms, origin, server_config, station_config};

fn member_role(net: &mut Net, station: &str) -> (Role, bool, bool) {
    match net
        .admin(AdminCmd::Stage {
            stage: "townhall".into(),
        })
        .unwrap()
    {
        AdminReply::Stage(s) => {
            let m = s.members.iter().find(|m| m.station_id == station).unwrap();
            (m.role, m.hand_raised, m.invited)
        }
        other => panic!("unexpected reply {other:?}"),
    }
}

fn transmits(net: &Net, i: StationIdx) -> Vec<bool> {
    net.stations[i]
        .observed
        .iter()
        .filter_map(|o| match o.event {
            StationEvent::Transmit(t) => Some(t),
            _ => None,
        })
        .collect()
}

/// The moderator invites `a-1`; the invitation has `settle` to arrive.
fn invite_a1(net: &mut Net, settle: Duration) {
    net.admin(AdminCmd::Invite {
        stage: "townhall".into(),
        station: "a-1".into(),
    })
    .unwrap();
    net.run_for(settle);
}

fn setup() -> (Net, StationIdx, StationIdx) {
    let mut net = Net::new(origin(), server_config(), 21);
    let a = net.add_station(station_config("a-1", 1));
    let m = net.add_station(station_config("mod-1", 2));
    net.run_for(Duration::from_secs(1));
    (net, a, m)
}

#[test]
fn audience_raises_hand_is_invited_accepts_and_talks() {
    let (mut net, a, m) = setup();
    assert_eq!(
        net.stations[m].core.led(),
        LedState::SpeakerIdle,
        "moderators can speak"
    );

    // PTT in the audience does nothing.
    net.click(a, ButtonId::Ptt);
    assert!(transmits(&net, a).is_empty());
    assert_eq!(net.stations[a].core.led(), LedState::Audience);

    net.click(a, ButtonId::Hand);
    assert_eq!(net.stations[a].core.led(), LedState::HandRaised);
    assert_eq!(member_role(&mut net, "a-1"), (Role::Audience, true, false));
    // The moderator's station sees the raised hand too.
    let seen = net.stations[m]
        .core
        .stage()
        .members()
        .find(|x| x.station_id == "a-1")
        .cloned();
    assert!(seen.unwrap().hand_raised);

    invite_a1(&mut net, ms(50));
    assert_eq!(net.stations[a].core.led(), LedState::Invited);

    // PTT accepts; holding that same press does not go live.
    net.button(a, ButtonId::Ptt, true);
    net.run_for(ms(300));
    assert_eq!(member_role(&mut net, "a-1"), (Role::Speaker, false, false));
    assert_eq!(net.stations[a].core.led(), LedState::SpeakerIdle);
    assert!(transmits(&net, a).is_empty());
    net.button(a, ButtonId::Ptt, false);
    net.run_for(ms(500));

    // Now a press is live while held.
    net.button(a, ButtonId::Ptt, true);
    net.run_for(ms(50));
    assert!(net.stations[a].core.is_transmitting());
    assert_eq!(net.stations[a].core.led(), LedState::Live);
    net.button(a, ButtonId::Ptt, false);
    net.run_for(ms(50));
    assert_eq!(transmits(&net, a), vec![true, false]);
    assert_eq!(net.stations[a].core.led(), LedState::SpeakerIdle);
}

#[test]
fn hand_declines_an_invitation() {
    let (mut net, a, _) = setup();
    invite_a1(&mut net, ms(50));
    net.click(a, ButtonId::Hand);
    assert_eq!(member_role(&mut net, "a-1"), (Role::Audience, false, false));
    assert_eq!(net.stations[a].core.led(), LedState::Audience);
}

#[test]
fn muted_speaker_cannot_go_live_and_moving_back_ends_talking() {
    let (mut net, a, _) = setup();
    invite_a1(&mut net, ms(50));
    net.click(a, ButtonId::Ptt);
    net.run_for(ms(500));
    net.admin(AdminCmd::Mute {
        stage: "townhall".into(),
        station: "a-1".into(),
        muted: true,
    })
    .unwrap();
    net.run_for(ms(50));
    assert_eq!(net.stations[a].core.led(), LedState::Muted);
    net.button(a, ButtonId::Ptt, true);
    net.run_for(ms(100));
    assert!(!net.stations[a].core.is_transmitting());
    assert_eq!(net.stations[a].core.led(), LedState::Muted);
    // Unmuted while still holding: the press began while it could speak, so it goes live.
    net.admin(AdminCmd::Mute {
        stage: "townhall".into(),
        station: "a-1".into(),
        muted: false,
    })
    .unwrap();
    net.run_for(ms(50));
    assert!(net.stations[a].core.is_transmitting());
    // Moved back to the audience mid-sentence: transmission stops at once.
    net.admin(AdminCmd::MoveToAudience {
        stage: "townhall".into(),
        station: "a-1".into(),
    })
    .unwrap();
    net.run_for(ms(50));
    assert!(!net.stations[a].core.is_transmitting());
    assert_eq!(net.stations[a].core.led(), LedState::Audience);
}

#[test]
fn double_press_latches_and_long_press_on_hand_steps_down() {
    let (mut net, a, m) = setup();
    // Moderator latches live with a double press, unlatches with a single one.
    net.click(m, ButtonId::Ptt);
    net.click(m, ButtonId::Ptt);
    net.run_for(Duration::from_secs(2));
    assert!(net.stations[m].core.is_transmitting(), "latched");
    net.click(m, ButtonId::Ptt);
    assert!(!net.stations[m].core.is_transmitting(), "unlatched");

    invite_a1(&mut net, ms(50));
    net.click(a, ButtonId::Ptt);
    assert_eq!(member_role(&mut net, "a-1").0, Role::Speaker);
    net.button(a, ButtonId::Hand, true);
    net.run_for(Duration::from_secs(2));
    net.button(a, ButtonId::Hand, false);
    net.run_for(ms(100));
    assert_eq!(member_role(&mut net, "a-1").0, Role::Audience);
}

#[test]
fn priority_speaker_reaches_every_station() {
    let (mut net, a, _) = setup();
    net.admin(AdminCmd::Priority {
        stage: "townhall".into(),
        station: Some("mod-1".into()),
    })
    .unwrap();
    net.run_for(ms(50));
    let mod_ssrc = net.stations[1].core.stage().me().unwrap().ssrc;
    let got = net.stations[a]
        .observed
        .iter()
        .any(|o| o.event == StationEvent::Priority(Some(mod_ssrc)));
    assert!(got);
    assert_eq!(net.stations[a].core.stage().priority_ssrc(), Some(mod_ssrc));
}

#[test]
fn quick_press_after_accepting_goes_live() {
    // The demo's timing: accept with a short click, then press and hold 70 ms later.
    let (mut net, a, _) = setup();
    invite_a1(&mut net, ms(500));
    net.button(a, ButtonId::Ptt, true);
    net.run_for(ms(80));
    net.button(a, ButtonId::Ptt, false);
    net.run_for(ms(70));
    assert_eq!(net.stations[a].core.led(), LedState::SpeakerIdle);
    net.button(a, ButtonId::Ptt, true);
    net.run_for(ms(100));
    assert!(
        net.stations[a].core.is_transmitting(),
        "leds: {:?}",
        net.stations[a].core.led()
    );
}

#[test]
fn raised_hands_queue_in_the_order_they_went_up() {
    let mut net = Net::new(origin(), server_config(), 22);
    let stations: Vec<StationIdx> = (1..=3)
        .map(|i| net.add_station(station_config(&format!("a-{i}"), i)))
        .collect();
    net.run_for(Duration::from_secs(1));
    for &i in [2usize, 0, 1].iter() {
        net.click(stations[i], ButtonId::Hand);
    }
    let queue = |net: &mut Net| -> Vec<String> {
        let AdminReply::Stage(s) = net
            .admin(AdminCmd::Stage {
                stage: "townhall".into(),
            })
            .unwrap()
        else {
            panic!("not a stage");
        };
        let mut raised: Vec<_> = s.members.into_iter().filter(|m| m.hand_raised).collect();
        raised.sort_by_key(|m| m.hand_order);
        raised.into_iter().map(|m| m.station_id).collect()
    };
    assert_eq!(queue(&mut net), vec!["a-3", "a-1", "a-2"]);
    // Lowering and raising again goes to the back of the queue.
    net.click(stations[2], ButtonId::Hand);
    net.click(stations[2], ButtonId::Hand);
    assert_eq!(queue(&mut net), vec!["a-1", "a-2", "a-3"]);
}

#[test]
fn a_stuck_ptt_stops_transmitting_and_says_so_until_released() {
    let (mut net, a, _) = setup();
    invite_a1(&mut net, ms(50));
    net.click(a, ButtonId::Ptt);
    net.run_for(ms(300));
    assert_eq!(net.stations[a].core.led(), LedState::SpeakerIdle);

    // Something rests on PTT: live for five minutes (the default limit), then not.
    net.button(a, ButtonId::Ptt, true);
    net.run_for(Duration::from_secs(299));
    assert!(net.stations[a].core.is_transmitting());
    net.run_for(Duration::from_secs(2));
    assert!(!net.stations[a].core.is_transmitting());
    assert_eq!(net.stations[a].core.led(), LedState::ButtonStuck);
    let stuck: Vec<_> = net.stations[a]
        .observed
        .iter()
        .filter_map(|o| match o.event {
            StationEvent::ButtonStuck { button, stuck } => Some((button, stuck, o.at)),
            _ => None,
        })
        .collect();
    assert_eq!(stuck.len(), 1);
    assert_eq!((stuck[0].0, stuck[0].1), (ButtonId::Ptt, true));
    // It stays off however long the button stays down.
    net.run_for(Duration::from_secs(600));
    assert_eq!(transmits(&net, a), vec![true, false]);

    // Released: the fault clears, and the next press talks again.
    net.button(a, ButtonId::Ptt, false);
    net.run_for(ms(100));
    assert_eq!(net.stations[a].core.led(), LedState::SpeakerIdle);
    net.button(a, ButtonId::Ptt, true);
    net.run_for(ms(100));
    assert!(net.stations[a].core.is_transmitting());
    assert_eq!(transmits(&net, a), vec![true, false, true]);
}

#[test]
fn a_button_held_at_start_up_is_reported_stuck() {
    let mut net = Net::new(origin(), server_config(), 21);
    let mut cfg = station_config("a-1", 1);
    cfg.stuck_after = Duration::from_secs(10);
    let a = net.add_station(cfg);
    net.button(a, ButtonId::Hand, true);
    net.run_for(Duration::from_secs(9));
    // The press counted once (the station had joined within the debounce time)...
    assert_eq!(net.stations[a].core.led(), LedState::HandRaised);
    // ...and holding it on is a fault, not a gesture.
    net.run_for(Duration::from_secs(2));
    assert_eq!(net.stations[a].core.led(), LedState::ButtonStuck);
    assert_eq!(member_role(&mut net, "a-1"), (Role::Audience, true, false));
    net.button(a, ButtonId::Hand, false);
    net.run_for(ms(100));
    assert_eq!(net.stations[a].core.led(), LedState::HandRaised);
}

#[test]
fn a_lost_sound_device_shows_error_and_the_station_stays_on_the_stage() {
    let (mut net, a, _) = setup();
    invite_a1(&mut net, ms(50));
    net.click(a, ButtonId::Ptt);
    net.run_for(ms(300));
    assert_eq!(net.stations[a].core.led(), LedState::SpeakerIdle);
    // The USB sound card is pulled out.
    let now = net.now;
    net.stations[a].core.handle_audio_device(now, false);
    net.run_for(Duration::from_secs(30));
    assert_eq!(net.stations[a].core.led(), LedState::Error);
    assert_eq!(
        member_role(&mut net, "a-1").0,
        Role::Speaker,
        "still on the stage"
    );
    // Plugged back in: the station is what it was.
    let now = net.now;
    net.stations[a].core.handle_audio_device(now, true);
    net.run_for(ms(100));
    assert_eq!(net.stations[a].core.led(), LedState::SpeakerIdle);
}

/// How station `i` was told to protect its audio, in order (the last is in force).
fn protections(net: &Net, i: StationIdx) -> Vec<LossProtection> {
    net.stations[i]
        .observed
        .iter()
        .filter_map(|o| match o.event {
            StationEvent::Protection(p) => Some(p),
            _ => None,
        })
        .collect()
}

/// What a session with redundant audio does against `loss` percent.
fn protection_for(loss: u8) -> LossProtection {
    LossProtection::for_loss(loss, true, ProtectionMode::Redundancy)
}

#[test]
fn a_speakers_protection_follows_what_its_listeners_lose() {
    // a-1 is a speaker; the moderator (who may speak too) listens and reports.
    let (mut net, a, m) = setup();
    invite_a1(&mut net, ms(50));
    net.click(a, ButtonId::Ptt);
    net.run_for(ms(300));
    assert_eq!(protections(&net, a).last(), Some(&protection_for(0)));
    // The moderator hears a-1 over a bad link: 12 of every 100 frames missing.
    let (mut received, mut lost) = (0u64, 0u64);
    for second in 0..10 {
        received += 44;
        lost += 6;
        let now = net.now;
        net.stations[m].core.handle_reception(now, received, lost);
        net.run_for(Duration::from_secs(1));
        if second == 1 {
            // Loss that begins is reported at once (not at the next 2 s report).
            assert_eq!(
                net.stations[a].core.expected_loss(),
                12,
                "told within a second"
            );
            assert_eq!(protections(&net, a).last(), Some(&protection_for(12)));
        }
    }
    assert_eq!(
        net.stations[a].core.expected_loss(),
        12,
        "a-1 covers its listener's loss"
    );
    assert_eq!(protections(&net, a).last(), Some(&protection_for(12)));
    assert_ne!(
        protection_for(12),
        protection_for(0),
        "the loss changes the protection"
    );
    // The link heals: the next reports carry no loss, and the protection goes back.
    for _ in 0..5 {
        received += 50;
        let now = net.now;
        net.stations[m].core.handle_reception(now, received, lost);
        net.run_for(Duration::from_secs(1));
    }
    assert_eq!(net.stations[a].core.expected_loss(), 0);
    assert_eq!(protections(&net, a).last(), Some(&protection_for(0)));
    // A listener that hears nothing reports nothing; a station never covers its own loss.
    assert_eq!(net.stations[m].core.expected_loss(), 0);
    assert!(
        protections(&net, m)
            .iter()
            .all(|p| p.redundancy <= protection_for(0).redundancy && p.fec_loss_percent == 0),
        "{:?}",
        protections(&net, m)
    );
}

#[test]
fn the_configured_least_protection_stays_when_listeners_lose_nothing() {
    let mut net = Net::new(origin(), server_config(), 21);
    let mut cfg = station_config("a-1", 1);
    cfg.min_expected_loss = 5;
    let a = net.add_station(cfg);
    let m = net.add_station(station_config("mod-1", 2));
    net.run_for(Duration::from_secs(1));
    invite_a1(&mut net, ms(50));
    net.click(a, ButtonId::Ptt);
    net.run_for(ms(300));
    for k in 1..4u64 {
        let now = net.now;
        net.stations[m].core.handle_reception(now, 100 * k, 0);
        net.run_for(Duration::from_secs(2));
    }
    assert_eq!(net.stations[a].core.expected_loss(), 5);
    assert_eq!(protections(&net, a).last(), Some(&protection_for(5)));
}

#[test]
fn the_led_never_says_live_while_the_session_is_down() {
    let (mut net, _a, m) = setup();
    net.button(m, ButtonId::Ptt, true);
    net.run_for(ms(50));
    assert_eq!(net.stations[m].core.led(), LedState::Live);
    // The link goes dead while the moderator keeps talking: once the missed heartbeats
    // show it, the LED says so, though the microphone stays open (media may still flow).
    net.blackhole(m);
    net.run_for(Duration::from_secs(5));
    let leds = net.leds(m);
    assert!(
        leds.ends_with(&[LedState::Live, LedState::Reconnecting, LedState::Live]),
        "{leds:?}"
    );
    // The server dies outright: `reconnecting` until a new one answers, then `live` again
    // by itself, the button still held.
    net.kill_server();
    net.run_for(ms(100));
    assert!(net.stations[m].core.is_transmitting());
    assert_eq!(net.stations[m].core.led(), LedState::Reconnecting);
    net.start_server();
    net.run_for(Duration::from_secs(20));
    assert_eq!(net.stations[m].core.led(), LedState::Live);
}

#[test]
fn an_update_never_reboots_a_station_that_is_live_or_invited_and_never_hides_live() {
    let (mut net, a, _m) = setup();
    assert!(
        net.stations[a].core.may_reboot(),
        "listening in the audience"
    );
    invite_a1(&mut net, ms(50));
    assert!(
        !net.stations[a].core.may_reboot(),
        "invited: waiting for an answer"
    );
    net.click(a, ButtonId::Ptt);
    // Past the double-press window: the next press is a hold, not a latch.
    net.run_for(ms(600));
    assert!(net.stations[a].core.may_reboot(), "a speaker not talking");
    // Installing: "do not unplug", unless the person is live.
    let now = net.now;
    net.stations[a].core.handle_updating(now, true);
    net.run_for(ms(10));
    assert_eq!(net.stations[a].core.led(), LedState::Updating);
    net.button(a, ButtonId::Ptt, true);
    net.run_for(ms(100));
    assert_eq!(net.stations[a].core.led(), LedState::Live);
    assert!(!net.stations[a].core.may_reboot(), "live");
    net.button(a, ButtonId::Ptt, false);
    net.run_for(ms(100));
    assert_eq!(net.stations[a].core.led(), LedState::Updating);
    assert!(net.stations[a].core.may_reboot());
    let now = net.now;
    net.stations[a].core.handle_updating(now, false);
    net.run_for(ms(10));
    assert_eq!(net.stations[a].core.led(), LedState::SpeakerIdle);
}
