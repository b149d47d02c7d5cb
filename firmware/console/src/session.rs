//! One console line's session: keys and frames in, the terminal's bytes and frames out, and
//! commands handed to the plumbing to run ([`ConsoleEvent::Run`], answered with
//! [`Console::handle_reply`]). One command runs at a time; a live view (levels, buttons,
//! `logs -f`) runs until a key, Ctrl-C or the host tool's stop ends it.
//!
//! Access: commands that change the station (or make noise, or export its logs) need the
//! station's PIN (`login`, or asked for at once when such a command is typed); reading
//! commands need it too unless the owner allows reading without it. A login ends with
//! `logout`, Ctrl-D, a broken line (a break, the cable pulled) or [`ConsoleConfig::idle_logout`]
//! without a key.
//!
//! Machine mode: a frame's body is a JSON request, `{"id": 7, "line": "update status"}`
//! (`"pin"` with `login`, `{"id": 8, "stop": true}` ends a live view); the answers are frames
//! `{"id": 7, "ok": true, "text": "…"}`, and `{"id": 7, "progress": "…"}` while a live view
//! runs. An answer too long for one frame comes as `{"id": 7, "more": "…"}` frames, whose
//! pieces go before the final answer's text.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use serde::Deserialize;

use crate::auth::{Attempt, PinGate, PinTries, PinVerifier};
use base64::Engine as _;

use crate::command::{self, Access, COMMANDS, Command, PushChunk, Secret};
use crate::editor::{Edit, LineEditor};
use crate::frame::{self, FrameDecoder};
use crate::input::{Input, InputSorter};

/// The most bytes waiting for the line: past it, live updates are dropped (the line is slower
/// than the view), and a long answer is cut.
pub const MAX_OUTPUT: usize = 64 * 1024;

/// Bytes of a long answer's text per `more` frame: escaped as JSON (at most six bytes a byte,
/// for control characters) it still fits one frame.
const ANSWER_PIECE: usize = 600;

#[derive(Debug, Clone)]
pub struct ConsoleConfig {
    /// The station's name, in the prompt.
    pub station: String,
    /// The station's PIN verifier; without one, nothing that needs the PIN can run.
    pub verifier: Option<PinVerifier>,
    /// Reading commands run without the PIN.
    pub read_without_pin: bool,
    /// A login ends after this long without a key or a request.
    pub idle_logout: Duration,
}

/// What the plumbing is asked to do, or told for the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConsoleEvent {
    /// Run `command`; answer with [`Console::handle_reply`] and this ticket.
    Run { ticket: u64, command: Command },
    /// End the live view running under `ticket` (then answer it with [`Reply::Done`]).
    Stop { ticket: u64 },
    /// For the station's log: logins, wrong PINs, logouts.
    Audit(String),
}

/// The plumbing's answer to a [`ConsoleEvent::Run`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// A live view's current picture (it replaces the last one on the terminal).
    Progress(String),
    /// The command finished: what it says, or why it failed.
    Done(Result<String, String>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Origin {
    Human,
    Machine(u64),
}

#[derive(Debug)]
struct Running {
    ticket: u64,
    origin: Origin,
    stop_sent: bool,
    /// Lines the last live picture took on the terminal.
    drawn_lines: usize,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Request {
    id: u64,
    #[serde(default)]
    line: Option<String>,
    #[serde(default)]
    pin: Option<String>,
    /// The Wi-Fi password for `wifi join`.
    #[serde(default)]
    secret: Option<String>,
    /// Confirms `factory-reset`.
    #[serde(default)]
    confirm: bool,
    #[serde(default)]
    stop: bool,
    #[serde(default)]
    push: Option<PushRequest>,
    #[serde(default)]
    fetch: Option<FetchRequest>,
}

/// `{"push": {"size": …, "sha256": "…", "offset": …, "data": "<base64>"}}`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PushRequest {
    size: u64,
    sha256: String,
    offset: u64,
    data: String,
}

/// `{"fetch": {"offset": …, "len": …}}`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FetchRequest {
    offset: u64,
    len: u32,
}

/// What a machine request brings besides its command.
#[derive(Debug, Clone, Copy, Default)]
struct Extras<'a> {
    pin: Option<&'a str>,
    secret: Option<&'a str>,
    confirm: bool,
}

/// What the next typed line answers (typed hidden, except a confirmation).
#[derive(Debug)]
enum Asking {
    /// The PIN, for `login` or for this command.
    Pin(Option<Command>),
    /// The password for `wifi join NAME`.
    WifiPassword(String),
    /// The station's name, to confirm this command.
    Confirm(Command),
}

#[derive(Debug)]
pub struct Console {
    cfg: ConsoleConfig,
    sorter: InputSorter,
    editor: LineEditor,
    frames: FrameDecoder,
    gate: Option<PinGate>,
    logged_in: bool,
    /// A PIN, a password or a confirmation is being typed.
    asking: Option<Asking>,
    running: Option<Running>,
    next_ticket: u64,
    out: Vec<u8>,
    events: VecDeque<ConsoleEvent>,
    last_activity: Instant,
}

impl Console {
    pub fn new(now: Instant, cfg: ConsoleConfig) -> Console {
        Console {
            gate: cfg.verifier.clone().map(PinGate::new),
            cfg,
            sorter: InputSorter::new(),
            editor: LineEditor::new(),
            frames: FrameDecoder::new(),
            logged_in: false,
            asking: None,
            running: None,
            next_ticket: 1,
            out: Vec::new(),
            events: VecDeque::new(),
            last_activity: now,
        }
    }

    /// Bytes from the line.
    pub fn handle_bytes(&mut self, now: Instant, bytes: &[u8]) {
        self.sorter.handle_bytes(now, bytes);
        self.drain_input(now);
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        self.sorter.handle_timeout(now);
        self.drain_input(now);
        if self.logged_in
            && now.saturating_duration_since(self.last_activity) >= self.cfg.idle_logout
        {
            self.logout("after a quiet spell");
            self.human(&format!(
                "\r\n(logged out after {} min without a key)\r\n",
                self.cfg.idle_logout.as_secs() / 60
            ));
            self.prompt();
        }
    }

    /// The station's wrong-PIN count as this line holds it at `now` (none without a PIN):
    /// the plumbing keeps it where every line and the next start find it.
    pub fn pin_tries(&self, now: Instant) -> Option<PinTries> {
        self.gate.as_ref().map(|g| g.tries(now))
    }

    /// The station's wrong-PIN count as kept (another line's misses, or those from before a
    /// restart): handed in before input that may hold a PIN, it replaces this line's own.
    pub fn handle_pin_tries(&mut self, now: Instant, tries: PinTries) {
        if let Some(gate) = &mut self.gate {
            gate.handle_tries(now, tries);
        }
    }

    /// When to call [`Self::handle_timeout`].
    pub fn poll_timeout(&self) -> Option<Instant> {
        let idle = self
            .logged_in
            .then(|| self.last_activity + self.cfg.idle_logout);
        match (self.sorter.poll_timeout(), idle) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The line broke (a break condition, the cable pulled, the port closed): what was
    /// half typed or half received is dropped, and the login ends.
    pub fn handle_line_reset(&mut self) {
        self.sorter.reset();
        self.frames.reset();
        self.editor.clear();
        self.editor.hidden = false;
        self.asking = None;
        if let Some(r) = &mut self.running
            && !r.stop_sent
        {
            r.stop_sent = true;
            self.events
                .push_back(ConsoleEvent::Stop { ticket: r.ticket });
        }
        self.logout("the line broke");
    }

    /// The plumbing's answer for `ticket`.
    pub fn handle_reply(&mut self, ticket: u64, reply: Reply) {
        let Some(running) = self.running.as_mut().filter(|r| r.ticket == ticket) else {
            return;
        };
        match (running.origin, reply) {
            (Origin::Human, Reply::Progress(text)) => {
                let text = crlf(&text);
                let mut redraw = Vec::new();
                if running.drawn_lines > 0 {
                    redraw.extend_from_slice(format!("\x1b[{}A", running.drawn_lines).as_bytes());
                }
                redraw.extend_from_slice(b"\r\x1b[J");
                redraw.extend_from_slice(text.as_bytes());
                redraw.extend_from_slice(b"\r\n");
                if self.out.len() + redraw.len() <= MAX_OUTPUT {
                    running.drawn_lines = text.matches("\r\n").count() + 1;
                    self.out.extend_from_slice(&redraw);
                }
            }
            (Origin::Machine(id), Reply::Progress(text)) => {
                if self.out.len() < MAX_OUTPUT / 2 {
                    self.send_frame(&serde_json::json!({"id": id, "progress": text}));
                }
            }
            (origin, Reply::Done(result)) => {
                self.running = None;
                self.finish(origin, result);
            }
        }
    }

    /// Bytes for the line, since the last call.
    pub fn poll_output(&mut self) -> Option<Vec<u8>> {
        (!self.out.is_empty()).then(|| std::mem::take(&mut self.out))
    }

    pub fn poll_event(&mut self) -> Option<ConsoleEvent> {
        self.events.pop_front()
    }

    /// Whether `login` holds now.
    pub fn logged_in(&self) -> bool {
        self.logged_in
    }

    fn drain_input(&mut self, now: Instant) {
        while let Some(input) = self.sorter.poll() {
            self.last_activity = now;
            match input {
                Input::Key(k) => self.key(now, k),
                Input::FrameLine(line) => match self.frames.handle_line(&line) {
                    Ok(Some(body)) => self.request(now, &body),
                    Ok(None) => {}
                    Err(e) => {
                        self.send_frame(&serde_json::json!({"ok": false, "error": e.to_string()}))
                    }
                },
                Input::FrameLineTooLong => {
                    self.frames.reset();
                    self.send_frame(
                        &serde_json::json!({"ok": false, "error": "a frame line was too long"}),
                    );
                }
            }
        }
    }

    fn key(&mut self, now: Instant, k: u8) {
        if let Some(r) = &mut self.running {
            // Any key ends a live view (and Ctrl-C any command); other typing waits.
            if r.origin == Origin::Human && !r.stop_sent {
                r.stop_sent = true;
                self.events
                    .push_back(ConsoleEvent::Stop { ticket: r.ticket });
            }
            return;
        }
        let edit = self.editor.handle_key(k);
        let echo = self.editor.take_echo();
        self.out.extend_from_slice(&echo);
        match edit {
            Edit::None => {}
            Edit::Line(line) => {
                if let Some(asking) = self.asking.take() {
                    self.editor.hidden = false;
                    self.answered(now, line, asking);
                    return;
                }
                match command::parse(&line) {
                    Ok(None) => self.prompt(),
                    Ok(Some(c)) => self.dispatch(now, c, Origin::Human, Extras::default()),
                    Err(e) => {
                        self.human_answer(&e.to_string());
                        self.prompt();
                    }
                }
            }
            Edit::Complete(before) => {
                if self.asking.is_some() {
                    return;
                }
                let c = command::complete(&before);
                if c.candidates.len() > 1 && c.line.len() == before.len() {
                    let list = c.candidates.join("  ");
                    self.human(&format!("\r\n{list}\r\n"));
                    self.prompt_only();
                    let line = self.editor.line();
                    self.human(&line);
                } else {
                    self.editor.replace_line(c.line.into_bytes());
                    let echo = self.editor.take_echo();
                    self.out.extend_from_slice(&echo);
                }
            }
            Edit::Interrupt => {
                if self.asking.take().is_some() {
                    self.editor.hidden = false;
                }
                self.prompt();
            }
            Edit::Logout => {
                self.human("logout\r\n");
                self.logout("Ctrl-D");
                self.prompt();
            }
        }
    }

    /// What `command` needs before it may run.
    fn allowed(&self, command: &Command) -> bool {
        match command::spec_of(command).access {
            _ if self.logged_in => true,
            Access::Read => {
                self.cfg.read_without_pin
                    || matches!(command, Command::Help(_) | Command::Login | Command::Logout)
            }
            Access::Change => false,
        }
    }

    fn dispatch(&mut self, now: Instant, command: Command, origin: Origin, extras: Extras<'_>) {
        match (&command, origin) {
            (Command::Help(topic), _) => {
                let text = help(topic.as_deref());
                self.finish(origin, Ok(text));
                return;
            }
            (Command::Logout, _) => {
                self.logout("logout");
                self.finish(origin, Ok("logged out".into()));
                return;
            }
            (Command::Login, Origin::Machine(_)) => {
                let said = self.try_pin(now, extras.pin.unwrap_or(""));
                self.finish(origin, said);
                return;
            }
            (Command::Login, Origin::Human) if self.logged_in => {
                self.finish(origin, Ok("already logged in".into()));
                return;
            }
            _ => {}
        }
        if self.gate.is_none() && (!self.allowed(&command) || command == Command::Login) {
            self.finish(
                origin,
                Err("this station has no console PIN yet: it is made at its first boot".into()),
            );
            return;
        }
        if command == Command::Login || !self.allowed(&command) {
            match origin {
                Origin::Human => {
                    let pending = (command != Command::Login).then_some(command);
                    self.ask(Asking::Pin(pending), "PIN (on the station's label): ");
                }
                Origin::Machine(_) => {
                    self.finish(origin, Err("log in first (login with the PIN)".into()));
                }
            }
            return;
        }
        match (command, origin) {
            (Command::WifiJoin { name, .. }, Origin::Human) => {
                let prompt = format!("Password for {name} (Enter alone for an open network): ");
                self.ask(Asking::WifiPassword(name), &prompt);
            }
            (Command::WifiJoin { name, .. }, Origin::Machine(_)) => {
                let password = Secret(extras.secret.unwrap_or_default().to_string());
                self.start(Command::WifiJoin { name, password }, origin);
            }
            (Command::FactoryReset, Origin::Human) => {
                let prompt = format!(
                    "This erases the station's settings and data and restarts it.\r\n\
                     Type its name ({}) to go on: ",
                    self.cfg.station
                );
                self.ask(Asking::Confirm(Command::FactoryReset), &prompt);
            }
            (Command::FactoryReset, Origin::Machine(_)) if !extras.confirm => {
                self.finish(origin, Err("factory-reset needs \"confirm\": true".into()));
            }
            (command, origin) => self.start(command, origin),
        }
    }

    /// Asks for the next line, hidden unless it is a confirmation.
    fn ask(&mut self, asking: Asking, prompt: &str) {
        self.editor.hidden = !matches!(asking, Asking::Confirm(_));
        self.asking = Some(asking);
        self.human(prompt);
    }

    /// A line typed in answer to [`Asking`].
    fn answered(&mut self, now: Instant, line: String, asking: Asking) {
        match asking {
            Asking::Pin(pending) => self.pin_typed(now, &line, pending),
            Asking::WifiPassword(name) => {
                let password = Secret(line);
                self.start(Command::WifiJoin { name, password }, Origin::Human);
            }
            Asking::Confirm(command) if line.trim() == self.cfg.station => {
                self.start(command, Origin::Human)
            }
            Asking::Confirm(_) => {
                self.human_answer("not confirmed: nothing was done");
                self.prompt();
            }
        }
    }

    /// Hands `command` to the plumbing.
    fn start(&mut self, command: Command, origin: Origin) {
        let ticket = self.next_ticket;
        self.next_ticket += 1;
        self.running = Some(Running {
            ticket,
            origin,
            stop_sent: false,
            drawn_lines: 0,
        });
        self.events.push_back(ConsoleEvent::Run { ticket, command });
    }

    fn pin_typed(&mut self, now: Instant, pin: &str, pending: Option<Command>) {
        match self.try_pin(now, pin) {
            Ok(said) => {
                self.human_answer(&said);
                match pending {
                    Some(c) => self.dispatch(now, c, Origin::Human, Extras::default()),
                    None => self.prompt(),
                }
            }
            Err(e) => {
                self.human_answer(&e);
                self.prompt();
            }
        }
    }

    fn try_pin(&mut self, now: Instant, pin: &str) -> Result<String, String> {
        let Some(gate) = &mut self.gate else {
            return Err("this station has no console PIN yet".into());
        };
        match gate.handle_attempt(now, pin) {
            Attempt::Granted => {
                self.logged_in = true;
                self.events
                    .push_back(ConsoleEvent::Audit("console login".into()));
                Ok("logged in".into())
            }
            Attempt::Denied { wait } => {
                let misses = gate.misses();
                self.events.push_back(ConsoleEvent::Audit(format!(
                    "wrong console PIN ({misses} in a row)"
                )));
                Err(if wait.is_zero() {
                    "wrong PIN".into()
                } else {
                    format!("wrong PIN; the next try in {} s", wait.as_secs())
                })
            }
            Attempt::TooSoon { wait } => Err(format!(
                "too many wrong PINs: try again in {} s",
                wait.as_secs().max(1)
            )),
        }
    }

    fn logout(&mut self, why: &str) {
        if std::mem::take(&mut self.logged_in) {
            self.events
                .push_back(ConsoleEvent::Audit(format!("console logout ({why})")));
        }
    }

    fn request(&mut self, now: Instant, body: &[u8]) {
        let req: Request = match serde_json::from_slice(body) {
            Ok(r) => r,
            Err(e) => {
                self.send_frame(
                    &serde_json::json!({"ok": false, "error": format!("not a request: {e}")}),
                );
                return;
            }
        };
        if req.stop {
            if let Some(r) = &mut self.running
                && !r.stop_sent
            {
                r.stop_sent = true;
                self.events
                    .push_back(ConsoleEvent::Stop { ticket: r.ticket });
            }
            self.answer(req.id, Ok(String::new()));
            return;
        }
        if self.running.is_some() {
            self.answer(req.id, Err("busy: a command is running".into()));
            return;
        }
        let extras = Extras {
            pin: req.pin.as_deref(),
            secret: req.secret.as_deref(),
            confirm: req.confirm,
        };
        let origin = Origin::Machine(req.id);
        if let Some(push) = req.push {
            match base64::engine::general_purpose::STANDARD.decode(push.data.as_bytes()) {
                Ok(data) => {
                    let chunk = PushChunk {
                        size: push.size,
                        sha256: push.sha256,
                        offset: push.offset,
                        data,
                    };
                    self.dispatch(now, Command::Push(chunk), origin, extras);
                }
                Err(e) => self.answer(req.id, Err(format!("push data is not base64: {e}"))),
            }
            return;
        }
        if let Some(FetchRequest { offset, len }) = req.fetch {
            self.dispatch(now, Command::Fetch { offset, len }, origin, extras);
            return;
        }
        match command::parse(req.line.as_deref().unwrap_or("")) {
            Ok(Some(c)) => self.dispatch(now, c, origin, extras),
            Ok(None) => self.answer(req.id, Err("no command".into())),
            Err(e) => self.answer(req.id, Err(e.to_string())),
        }
    }

    /// A command's end: its answer (nothing for an empty one) and the prompt, or its frame.
    fn finish(&mut self, origin: Origin, result: Result<String, String>) {
        match origin {
            Origin::Human => {
                match result {
                    Ok(text) if text.is_empty() => {}
                    Ok(text) => self.human_answer(&text),
                    Err(e) => self.human_answer(&format!("error: {e}")),
                }
                self.prompt();
            }
            Origin::Machine(id) => self.answer(id, result),
        }
    }

    fn answer(&mut self, id: u64, result: Result<String, String>) {
        let value = match result {
            Ok(text) => serde_json::json!({"id": id, "ok": true, "text": text}),
            Err(e) => serde_json::json!({"id": id, "ok": false, "error": e}),
        };
        if value.to_string().len() <= frame::MAX_BODY {
            return self.send_frame(&value);
        }
        // Too long for one frame (the journal's last lines, say): the text goes ahead in
        // `more` frames, which the host joins, and the last piece in the answer itself.
        let key = if value["ok"] == true { "text" } else { "error" };
        let text = value[key].as_str().unwrap_or_default().to_string();
        let mut pieces = Vec::new();
        let mut rest = text.as_str();
        while !rest.is_empty() {
            let mut end = rest.len().min(ANSWER_PIECE);
            while !rest.is_char_boundary(end) {
                end -= 1;
            }
            let (piece, after) = rest.split_at(end);
            pieces.push(piece);
            rest = after;
        }
        let last = pieces.pop().unwrap_or_default();
        for piece in pieces {
            if self.out.len() + frame::MAX_BODY * 2 > MAX_OUTPUT {
                // The line is behind: what is left is said to be cut, not queued without end.
                let cut = serde_json::json!({"id": id, "ok": false, "error": "the answer is longer than the line can take now; it was cut"});
                return self.send_frame(&cut);
            }
            self.send_frame(&serde_json::json!({"id": id, "more": piece}));
        }
        let mut end = value;
        end[key] = serde_json::json!(last);
        self.send_frame(&end);
    }

    /// A JSON value as frames; one too long for a frame is cut to an error.
    fn send_frame(&mut self, value: &serde_json::Value) {
        let body = value.to_string();
        let mut lines = Vec::new();
        if frame::encode(body.as_bytes(), &mut lines).is_err() {
            let cut = serde_json::json!({
                "id": value.get("id"),
                "ok": false,
                "error": format!("the answer ({} bytes) is over a frame's {} bytes", body.len(), frame::MAX_BODY),
            });
            let _ = frame::encode(cut.to_string().as_bytes(), &mut lines);
        }
        self.out.extend_from_slice(&lines);
    }

    fn human(&mut self, text: &str) {
        let room = MAX_OUTPUT.saturating_sub(self.out.len());
        if text.len() <= room {
            self.out.extend_from_slice(text.as_bytes());
        } else {
            let mut end = room.saturating_sub(40).min(text.len());
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            self.out.extend_from_slice(&text.as_bytes()[..end]);
            self.out.extend_from_slice(b"\r\n(the rest was cut)\r\n");
        }
    }

    /// A command's answer, its lines ending CR LF.
    fn human_answer(&mut self, text: &str) {
        let mut text = crlf(text);
        if !text.ends_with("\r\n") {
            text.push_str("\r\n");
        }
        self.human(&text);
    }

    fn prompt_only(&mut self) {
        let mark = if self.logged_in { '#' } else { '>' };
        let prompt = format!("{}{mark} ", self.cfg.station);
        self.human(&prompt);
    }

    fn prompt(&mut self) {
        self.editor.hidden = false;
        self.prompt_only();
    }
}

fn crlf(text: &str) -> String {
    text.replace("\r\n", "\n").replace('\n', "\r\n")
}

/// `help`, or `help COMMAND`.
fn help(topic: Option<&str>) -> String {
    let width = COMMANDS
        .iter()
        .map(|s| command::usage(s).len())
        .max()
        .unwrap_or(0);
    let line = |s: &command::Spec| {
        let pin = if s.access == Access::Change {
            " (PIN)"
        } else {
            ""
        };
        format!("  {:width$}  {}{pin}", command::usage(s), s.help)
    };
    let chosen: Vec<String> = COMMANDS
        .iter()
        .filter(|s| topic.is_none_or(|t| s.words.join(" ").starts_with(t)))
        .map(line)
        .collect();
    if chosen.is_empty() {
        return format!("no command {:?}: `help` lists them", topic.unwrap_or(""));
    }
    let mut text = String::new();
    if topic.is_none() {
        text.push_str("Commands (Tab completes, ↑ recalls, a key stops a live view):\n");
    }
    text.push_str(&chosen.join("\n"));
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    const PIN: &str = "40718263";

    fn console(read_without_pin: bool) -> (Console, Instant) {
        let t = Instant::now();
        let cfg = ConsoleConfig {
            station: "podium-1".into(),
            verifier: Some(PinVerifier::new(PIN, 1000).unwrap()),
            read_without_pin,
            idle_logout: Duration::from_secs(600),
        };
        (Console::new(t, cfg), t)
    }

    fn screen(c: &mut Console) -> String {
        String::from_utf8_lossy(&c.poll_output().unwrap_or_default()).into_owned()
    }

    fn events(c: &mut Console) -> Vec<ConsoleEvent> {
        std::iter::from_fn(|| c.poll_event()).collect()
    }

    /// The JSON answers in `bytes` (frames only).
    fn answers(bytes: &[u8]) -> Vec<serde_json::Value> {
        let mut sorter = InputSorter::new();
        let mut frames = FrameDecoder::new();
        sorter.handle_bytes(Instant::now(), bytes);
        std::iter::from_fn(|| sorter.poll())
            .filter_map(|i| match i {
                Input::FrameLine(l) => frames.handle_line(&l).ok().flatten(),
                _ => None,
            })
            .map(|b| serde_json::from_slice(&b).unwrap())
            .collect()
    }

    fn request(c: &mut Console, t: Instant, value: serde_json::Value) {
        let mut lines = Vec::new();
        frame::encode(value.to_string().as_bytes(), &mut lines).unwrap();
        c.handle_bytes(t, &lines);
    }

    #[test]
    fn a_reading_command_runs_and_its_answer_is_shown_with_a_prompt() {
        let (mut c, t) = console(true);
        c.handle_bytes(t, b"stat\t");
        assert!(screen(&mut c).ends_with("status "));
        c.handle_bytes(t, b"\r");
        assert_eq!(
            events(&mut c),
            vec![ConsoleEvent::Run {
                ticket: 1,
                command: Command::Status
            }]
        );
        c.handle_reply(1, Reply::Done(Ok("role: audience\nstage: hall".into())));
        assert_eq!(
            screen(&mut c),
            "\r\nrole: audience\r\nstage: hall\r\npodium-1> "
        );
        c.handle_bytes(t, b"sudo\r");
        assert!(screen(&mut c).contains("unknown command \"sudo\""));
        c.handle_bytes(t, b"help update\r");
        let help = screen(&mut c);
        assert!(help.contains("update install"), "{help}");
        assert!(help.contains("(PIN)"), "{help}");
        assert!(!help.contains("reboot"), "{help}");
    }

    #[test]
    fn a_changing_command_asks_for_the_pin_which_never_shows() {
        let (mut c, t) = console(true);
        c.handle_bytes(t, b"reboot\r");
        assert!(screen(&mut c).ends_with("PIN (on the station's label): "));
        assert_eq!(events(&mut c), vec![]);
        c.handle_bytes(t, PIN.as_bytes());
        c.handle_bytes(t, b"\r");
        let shown = screen(&mut c);
        assert!(!shown.contains(PIN), "{shown:?}");
        assert!(shown.contains("logged in"), "{shown:?}");
        assert_eq!(
            events(&mut c),
            vec![
                ConsoleEvent::Audit("console login".into()),
                ConsoleEvent::Run {
                    ticket: 1,
                    command: Command::Reboot
                }
            ]
        );
        c.handle_reply(1, Reply::Done(Ok("rebooting".into())));
        assert!(screen(&mut c).ends_with("podium-1# "));
        // The PIN stays out of the history.
        c.handle_bytes(t, b"\x1b[A\x1b[A\x1b[A");
        assert!(!screen(&mut c).contains(PIN));
    }

    #[test]
    fn wrong_pins_are_counted_logged_and_slowed() {
        let (mut c, t) = console(false);
        for n in 1..=3 {
            c.handle_bytes(t, b"login\r0000\r");
            let shown = screen(&mut c);
            assert!(shown.contains("wrong PIN"), "{shown}");
            assert_eq!(
                events(&mut c),
                vec![ConsoleEvent::Audit(format!(
                    "wrong console PIN ({n} in a row)"
                ))]
            );
        }
        c.handle_bytes(t, b"login\r");
        c.handle_bytes(t, PIN.as_bytes());
        c.handle_bytes(t, b"\r");
        assert!(screen(&mut c).contains("try again in 30 s"));
        assert!(!c.logged_in());
        let later = t + Duration::from_secs(30);
        c.handle_bytes(later, b"status\r");
        c.handle_bytes(later, PIN.as_bytes());
        c.handle_bytes(later, b"\r");
        assert!(c.logged_in());
        assert_eq!(
            events(&mut c),
            vec![
                ConsoleEvent::Audit("console login".into()),
                ConsoleEvent::Run {
                    ticket: 1,
                    command: Command::Status
                }
            ]
        );
    }

    #[test]
    fn a_live_view_redraws_in_place_until_a_key_stops_it() {
        let (mut c, t) = console(true);
        c.handle_bytes(t, b"audio levels\r");
        let _ = screen(&mut c);
        let _ = events(&mut c);
        c.handle_reply(1, Reply::Progress("mic 1 ####\nmic 2 ##".into()));
        assert_eq!(screen(&mut c), "\r\x1b[Jmic 1 ####\r\nmic 2 ##\r\n");
        c.handle_reply(1, Reply::Progress("mic 1 ##\nmic 2 ###".into()));
        assert!(screen(&mut c).starts_with("\x1b[2A\r\x1b[J"));
        c.handle_bytes(t, b"q");
        c.handle_bytes(t, b"q");
        assert_eq!(events(&mut c), vec![ConsoleEvent::Stop { ticket: 1 }]);
        c.handle_reply(1, Reply::Done(Ok(String::new())));
        assert_eq!(screen(&mut c), "podium-1> ");
        // An old ticket's answer is ignored.
        c.handle_reply(1, Reply::Done(Ok("late".into())));
        assert_eq!(c.poll_output(), None);
    }

    #[test]
    fn the_host_tool_speaks_frames_on_the_same_line() {
        let (mut c, t) = console(false);
        request(
            &mut c,
            t,
            serde_json::json!({"id": 1, "line": "update status"}),
        );
        let a = answers(&screen(&mut c).into_bytes());
        assert_eq!(a[0]["id"], 1);
        assert_eq!(a[0]["ok"], false);
        request(
            &mut c,
            t,
            serde_json::json!({"id": 2, "line": "login", "pin": PIN}),
        );
        assert_eq!(answers(&screen(&mut c).into_bytes())[0]["ok"], true);
        let _ = events(&mut c);
        request(&mut c, t, serde_json::json!({"id": 3, "line": "logs -f"}));
        assert_eq!(
            events(&mut c),
            vec![ConsoleEvent::Run {
                ticket: 1,
                command: Command::Logs {
                    follow: true,
                    filter: None
                }
            }]
        );
        request(&mut c, t, serde_json::json!({"id": 4, "line": "status"}));
        assert_eq!(
            answers(&screen(&mut c).into_bytes())[0]["error"],
            "busy: a command is running"
        );
        c.handle_reply(1, Reply::Progress("a log line".into()));
        assert_eq!(
            answers(&screen(&mut c).into_bytes())[0],
            serde_json::json!({"id": 3, "progress": "a log line"})
        );
        request(&mut c, t, serde_json::json!({"id": 5, "stop": true}));
        assert_eq!(events(&mut c), vec![ConsoleEvent::Stop { ticket: 1 }]);
        c.handle_reply(1, Reply::Done(Ok("stopped".into())));
        let a = answers(&screen(&mut c).into_bytes());
        assert_eq!(
            a.last().unwrap(),
            &serde_json::json!({"id": 3, "ok": true, "text": "stopped"})
        );
        // Garbage in a frame, and a frame that is not a request: said, nothing run.
        c.handle_bytes(t, b"\x06\x09!!!!\n");
        request(&mut c, t, serde_json::json!({"id": 6, "rm": "-rf"}));
        let a = answers(&screen(&mut c).into_bytes());
        assert_eq!(a.len(), 2);
        assert!(a.iter().all(|v| v["ok"] == false));
        assert_eq!(events(&mut c), vec![]);
    }

    #[test]
    fn an_answer_longer_than_a_frame_comes_in_pieces_the_host_joins() {
        let (mut c, t) = console(true);
        request(&mut c, t, serde_json::json!({"id": 3, "line": "logs"}));
        let [ConsoleEvent::Run { ticket, .. }] = events(&mut c)[..] else {
            panic!("no command run");
        };
        // The journal's last lines: longer than a frame, with quotes and a control character
        // that JSON escapes.
        let journal: String = (0..90)
            .map(|i| {
                format!(
                    "2026-12-07T03:{i:02}:00 station stagebox-stationd[7]: \"line\" {i}\u{1}é\n"
                )
            })
            .collect();
        assert!(journal.len() > frame::MAX_BODY);
        c.handle_reply(ticket, Reply::Done(Ok(journal.clone())));
        let got = answers(&c.poll_output().unwrap());
        let (last, pieces) = got.split_last().unwrap();
        assert!(!pieces.is_empty());
        let mut joined: String = pieces
            .iter()
            .map(|p| {
                assert_eq!(p["id"], 3);
                p["more"].as_str().unwrap()
            })
            .collect();
        assert_eq!(last["ok"], true);
        joined.push_str(last["text"].as_str().unwrap());
        assert_eq!(joined, journal);
    }

    #[test]
    fn a_login_ends_when_idle_or_when_the_line_breaks() {
        let (mut c, t) = console(false);
        c.handle_bytes(t, b"login\r");
        c.handle_bytes(t, PIN.as_bytes());
        c.handle_bytes(t, b"\r");
        assert!(c.logged_in());
        assert_eq!(c.poll_timeout(), Some(t + Duration::from_secs(600)));
        c.handle_timeout(t + Duration::from_secs(600));
        assert!(!c.logged_in());
        assert!(screen(&mut c).contains("logged out after 10 min"));
        c.handle_bytes(t, b"login\r");
        c.handle_bytes(t, PIN.as_bytes());
        c.handle_bytes(t, b"\rreb");
        c.handle_line_reset();
        assert!(!c.logged_in());
        c.handle_bytes(t, b"oot\r");
        assert!(screen(&mut c).contains("unknown command \"oot\""));
    }

    #[test]
    fn without_a_pin_nothing_that_needs_one_runs() {
        let t = Instant::now();
        let mut c = Console::new(
            t,
            ConsoleConfig {
                station: "s".into(),
                verifier: None,
                read_without_pin: true,
                idle_logout: Duration::from_secs(600),
            },
        );
        c.handle_bytes(t, b"factory-reset\r");
        assert!(screen(&mut c).contains("no console PIN yet"));
        c.handle_bytes(t, b"status\r");
        assert_eq!(events(&mut c).len(), 1);
    }

    #[test]
    fn a_wifi_password_is_asked_hidden_and_a_factory_reset_confirmed_by_name() {
        let (mut c, t) = console(true);
        c.handle_bytes(
            t,
            b"login
40718263
",
        );
        let _ = screen(&mut c);
        let _ = events(&mut c);
        c.handle_bytes(t, b"wifi join \"Hall B\"\r");
        assert!(
            screen(&mut c).ends_with("Password for Hall B (Enter alone for an open network): ")
        );
        c.handle_bytes(t, b"s3cret-pass\r");
        assert!(!screen(&mut c).contains("s3cret"));
        let run = events(&mut c);
        assert_eq!(
            run,
            vec![ConsoleEvent::Run {
                ticket: 1,
                command: Command::WifiJoin {
                    name: "Hall B".into(),
                    password: Secret("s3cret-pass".into())
                }
            }]
        );
        assert!(
            !format!("{run:?}").contains("s3cret"),
            "a secret in a log line"
        );
        c.handle_reply(1, Reply::Done(Ok("joined".into())));
        let _ = screen(&mut c);
        c.handle_bytes(t, b"factory-reset\rpodium-2\r");
        assert!(screen(&mut c).contains("not confirmed: nothing was done"));
        assert_eq!(events(&mut c), vec![]);
        c.handle_bytes(t, b"factory-reset\r");
        assert!(screen(&mut c).contains("Type its name (podium-1)"));
        c.handle_bytes(t, b"podium-1\r");
        assert_eq!(
            events(&mut c),
            vec![ConsoleEvent::Run {
                ticket: 2,
                command: Command::FactoryReset
            }]
        );
    }

    #[test]
    fn the_host_tool_pushes_and_fetches_in_pieces_after_login_only() {
        let (mut c, t) = console(true);
        let push = serde_json::json!({"id": 1, "push": {
            "size": 5, "sha256": "ab", "offset": 0, "data": "aGVsbG8="}});
        request(&mut c, t, push.clone());
        let said = answers(&c.poll_output().unwrap());
        assert_eq!(said[0]["error"], "log in first (login with the PIN)");
        request(
            &mut c,
            t,
            serde_json::json!({"id": 2, "line": "login", "pin": PIN}),
        );
        let _ = c.poll_output();
        let _ = events(&mut c);
        request(&mut c, t, push);
        assert_eq!(
            events(&mut c),
            vec![ConsoleEvent::Run {
                ticket: 1,
                command: Command::Push(PushChunk {
                    size: 5,
                    sha256: "ab".into(),
                    offset: 0,
                    data: b"hello".to_vec()
                })
            }]
        );
        c.handle_reply(1, Reply::Done(Ok("{\"have\":5}".into())));
        let _ = c.poll_output();
        request(
            &mut c,
            t,
            serde_json::json!({"id": 3, "fetch": {"offset": 10, "len": 2048}}),
        );
        assert_eq!(
            events(&mut c),
            vec![ConsoleEvent::Run {
                ticket: 2,
                command: Command::Fetch {
                    offset: 10,
                    len: 2048
                }
            }]
        );
        c.handle_reply(2, Reply::Done(Ok(String::new())));
        let _ = c.poll_output();
        request(
            &mut c,
            t,
            serde_json::json!({"id": 4, "line": "factory-reset"}),
        );
        let said = answers(&c.poll_output().unwrap());
        assert_eq!(said[0]["error"], "factory-reset needs \"confirm\": true");
        request(
            &mut c,
            t,
            serde_json::json!({"id": 5, "line": "factory-reset", "confirm": true}),
        );
        assert_eq!(
            events(&mut c),
            vec![ConsoleEvent::Run {
                ticket: 3,
                command: Command::FactoryReset
            }]
        );
    }
}
