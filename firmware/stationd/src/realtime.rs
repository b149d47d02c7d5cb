//! Real-time scheduling for the audio thread, where the system allows it: SCHED_FIFO (so a
//! busy network task, a log burst or another process cannot make it late) and the process's
//! memory locked as it is touched (so no page fault waits on the SD card). Either may be
//! refused (no `CAP_SYS_NICE` / `LimitRTPRIO`, no `CAP_IPC_LOCK` / `LimitMEMLOCK`): the
//! station then runs at normal priority and says so in its log.

use rustix::mm::{MlockAllFlags, mlockall};
use thread_priority::unix::{
    RealtimeThreadSchedulePolicy, ThreadSchedulePolicy, set_thread_priority_and_policy,
    thread_native_id,
};
use thread_priority::{ThreadPriority, ThreadPriorityValue};

/// SCHED_FIFO priority of the audio thread: above ordinary threaded IRQ handlers' 50 would
/// starve them; below is enough to win over every normal task.
pub const AUDIO_PRIORITY: u8 = 40;

/// What the system allowed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Realtime {
    pub fifo: Result<(), String>,
    pub memory_locked: Result<(), String>,
}

/// Makes the calling thread SCHED_FIFO at [`AUDIO_PRIORITY`] and locks the process's memory
/// as it is faulted in (current and future mappings; `MCL_ONFAULT`, so thread stacks are not
/// populated whole).
pub fn promote_current_thread() -> Realtime {
    let fifo = ThreadPriorityValue::try_from(AUDIO_PRIORITY)
        .map_err(|e| e.to_string())
        .and_then(|value| {
            set_thread_priority_and_policy(
                thread_native_id(),
                ThreadPriority::Crossplatform(value),
                ThreadSchedulePolicy::Realtime(RealtimeThreadSchedulePolicy::Fifo),
            )
            .map_err(|e| format!("{e:?}"))
        });
    let memory_locked =
        mlockall(MlockAllFlags::CURRENT | MlockAllFlags::FUTURE | MlockAllFlags::ONFAULT)
            .map_err(|e| e.to_string());
    Realtime {
        fifo,
        memory_locked,
    }
}

impl Realtime {
    /// Logs what the audio thread got, and how to get the rest.
    pub fn log(&self) {
        match &self.fifo {
            Ok(()) => log::info!("audio thread: real-time (SCHED_FIFO {AUDIO_PRIORITY})"),
            Err(e) => log::warn!(
                "audio thread: normal priority, real-time refused ({e}); allow it with \
                 LimitRTPRIO={AUDIO_PRIORITY} in the unit or CAP_SYS_NICE"
            ),
        }
        match &self.memory_locked {
            Ok(()) => log::info!("memory locked (no page faults on the audio path)"),
            Err(e) => log::warn!(
                "memory not locked ({e}); allow it with LimitMEMLOCK in the unit or CAP_IPC_LOCK"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn promotion_is_tried_and_reported_never_fatal() {
        // Run on a thread of its own: whatever this machine allows, the answer is a report.
        let r = std::thread::spawn(promote_current_thread)
            .join()
            .unwrap_or(Realtime {
                fifo: Err("thread panicked".into()),
                memory_locked: Err("thread panicked".into()),
            });
        for refusal in [&r.fifo, &r.memory_locked]
            .into_iter()
            .filter_map(|x| x.as_ref().err())
        {
            assert!(!refusal.is_empty() && refusal != "thread panicked", "{r:?}");
        }
        r.log();
    }
}
