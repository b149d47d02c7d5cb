//! Opening a serial line as the console needs it: raw, 8N1 at the asked speed, no flow
//! control, modem lines ignored (a three-wire USB-serial cable has none), and a break read as
//! a NUL byte (neither ignored nor a signal), so the console can take it as "the line broke".

use std::fs::File;
use std::io;
use std::path::Path;

use rustix::fs::{Mode, OFlags};
use rustix::termios::{
    self, ControlModes, InputModes, OptionalActions, QueueSelector, SpecialCodeIndex,
};

/// What a break looks like in the bytes read.
pub const BREAK_BYTE: u8 = 0;

/// Opens `path` (non-blocking, not as the controlling terminal) and sets it up.
pub fn open(path: &Path, baud: u32) -> io::Result<File> {
    let fd = rustix::fs::open(
        path,
        OFlags::RDWR | OFlags::NOCTTY | OFlags::NONBLOCK | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let mut t = termios::tcgetattr(&fd)?;
    t.make_raw();
    t.control_modes |= ControlModes::CREAD | ControlModes::CLOCAL | ControlModes::CS8;
    t.control_modes -= ControlModes::CSTOPB | ControlModes::PARENB | ControlModes::CRTSCTS;
    t.input_modes -= InputModes::IXON
        | InputModes::IXOFF
        | InputModes::IGNBRK
        | InputModes::BRKINT
        | InputModes::PARMRK;
    t.set_speed(baud)?;
    t.special_codes[SpecialCodeIndex::VMIN] = 1;
    t.special_codes[SpecialCodeIndex::VTIME] = 0;
    termios::tcsetattr(&fd, OptionalActions::Now, &t)?;
    // What sat in the buffers from before (a boot's noise) is not for us.
    termios::tcflush(&fd, QueueSelector::IOFlush)?;
    Ok(File::from(fd))
}
