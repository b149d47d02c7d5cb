//! The machine side of a station's console line: requests out as frames, answers back,
//! whatever else the line carries (the kernel's messages, a person's echo) left aside.

use std::io::{Read as _, Write as _};
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};
use stagebox_console::frame::{self, FrameDecoder};
use stagebox_console::input::{Input, InputSorter};

/// How long a plain command may take to answer (a `net` probe takes a few seconds).
pub const ANSWER_LIMIT: Duration = Duration::from_secs(30);
/// How often a request is sent again when the station says a frame arrived damaged.
const RESENDS: u32 = 3;
/// The longest answer joined from `more` frames (the console queues at most 64 KiB).
const LONGEST_ANSWER: usize = 256 * 1024;

pub struct Link {
    port: Box<dyn serialport::SerialPort>,
    sorter: InputSorter,
    frames: FrameDecoder,
    answers: std::collections::VecDeque<Value>,
    next_id: u64,
    pin: Option<String>,
    /// Asks for the PIN when the station wants one and none was given.
    pin_prompt: Box<dyn FnMut() -> Result<String>>,
}

impl Link {
    pub fn open(
        path: &Path,
        pin: Option<String>,
        pin_prompt: Box<dyn FnMut() -> Result<String>>,
    ) -> Result<Link> {
        let name = path.to_string_lossy();
        let port = serialport::new(name.as_ref(), 115_200)
            .timeout(Duration::from_millis(100))
            .open()
            .with_context(|| format!("opening {name}"))?;
        let mut link = Link {
            port,
            sorter: InputSorter::new(),
            frames: FrameDecoder::new(),
            answers: Default::default(),
            next_id: u64::from(std::process::id()) << 16,
            pin,
            pin_prompt,
        };
        // A live view left running by an earlier run (stopped with Ctrl-C) is ended first;
        // this also finds out whether a station answers (asked three times: a console
        // that is just (re)opening its line drops what was sent before).
        let mut tries = 0;
        loop {
            tries += 1;
            match link.request(json!({"stop": true}), Duration::from_secs(2), &mut |_| true) {
                Ok(_) => return Ok(link),
                Err(e) if tries == 3 => return Err(e),
                Err(_) => {}
            }
        }
    }

    /// Sends `body` (its `id` is set here) and waits for its answer; `progress` sees each
    /// live picture and returns false to stop the view.
    pub fn request(
        &mut self,
        mut body: Value,
        limit: Duration,
        progress: &mut dyn FnMut(&str) -> bool,
    ) -> Result<Value> {
        let id = self.next_id;
        self.next_id += 1;
        body["id"] = json!(id);
        let mut sends = 0;
        self.send(&body)?;
        let mut deadline = Instant::now() + limit;
        let mut stopping = false;
        // A long answer's text, ahead of its final frame.
        let mut ahead = String::new();
        loop {
            let Some(answer) = self.next_answer(deadline)? else {
                bail!(
                    "the station did not answer within {} s (is this its console port, and is \
                     it on?)",
                    limit.as_secs()
                );
            };
            match answer.get("id").and_then(Value::as_u64) {
                Some(got) if got == id => {
                    if let Some(piece) = answer.get("more").and_then(Value::as_str) {
                        deadline = Instant::now() + limit;
                        if ahead.len() + piece.len() > LONGEST_ANSWER {
                            bail!("the station's answer is over {LONGEST_ANSWER} bytes");
                        }
                        ahead.push_str(piece);
                        continue;
                    }
                    if let Some(text) = answer.get("progress").and_then(Value::as_str) {
                        deadline = Instant::now() + limit;
                        if !stopping && !progress(text) {
                            stopping = true;
                            let stop = json!({"id": self.next_id, "stop": true});
                            self.next_id += 1;
                            self.send(&stop)?;
                        }
                        continue;
                    }
                    let mut answer = answer;
                    for key in ["text", "error"] {
                        if !ahead.is_empty()
                            && let Some(last) = answer.get(key).and_then(Value::as_str)
                        {
                            answer[key] = json!(std::mem::take(&mut ahead) + last);
                        }
                    }
                    return Ok(answer);
                }
                // A frame the station could not read: ours, most likely.
                None if answer.get("ok") == Some(&Value::Bool(false)) && sends < RESENDS => {
                    sends += 1;
                    self.send(&body)?;
                }
                _ => {}
            }
        }
    }

    /// Runs a command line; logs in first when the station asks for the PIN.
    pub fn command(
        &mut self,
        line: &str,
        extra: Value,
        limit: Duration,
        progress: &mut dyn FnMut(&str) -> bool,
    ) -> Result<Value> {
        let mut body = extra;
        body["line"] = json!(line);
        self.call(body, limit, progress)
    }

    /// Sends a request; logs in first when the station asks for the PIN.
    pub fn call(
        &mut self,
        body: Value,
        limit: Duration,
        progress: &mut dyn FnMut(&str) -> bool,
    ) -> Result<Value> {
        let answer = self.request(body.clone(), limit, progress)?;
        if answer["error"]
            .as_str()
            .is_some_and(|e| e.starts_with("log in first"))
        {
            self.login()?;
            return self.request(body, limit, progress);
        }
        Ok(answer)
    }

    /// Logs in with the PIN given, or asked for.
    pub fn login(&mut self) -> Result<()> {
        let pin = match self.pin.clone() {
            Some(p) => p,
            None => (self.pin_prompt)()?,
        };
        let answer = self.request(
            json!({"line": "login", "pin": pin}),
            ANSWER_LIMIT,
            &mut |_| true,
        )?;
        if answer["ok"] != true {
            bail!("login: {}", answer["error"].as_str().unwrap_or("refused"));
        }
        self.pin = Some(pin);
        Ok(())
    }

    fn send(&mut self, body: &Value) -> Result<()> {
        let mut lines = Vec::new();
        frame::encode(body.to_string().as_bytes(), &mut lines)
            .context("a request too big for a frame")?;
        self.port.write_all(&lines).context("writing to the line")?;
        self.port.flush().context("writing to the line")?;
        Ok(())
    }

    /// The next answer frame, or `None` at `deadline`.
    fn next_answer(&mut self, deadline: Instant) -> Result<Option<Value>> {
        let mut buf = [0u8; 4096];
        loop {
            if let Some(a) = self.answers.pop_front() {
                return Ok(Some(a));
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(None);
            }
            match self.port.read(&mut buf) {
                Ok(0) => bail!("the line hung up"),
                Ok(n) => self.sorter.handle_bytes(Instant::now(), &buf[..n]),
                // Ctrl-C interrupts a read; the live view then ends cleanly.
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::TimedOut | std::io::ErrorKind::Interrupted
                    ) =>
                {
                    self.sorter.handle_timeout(Instant::now())
                }
                Err(e) => return Err(e).context("reading the line (was the cable pulled?)"),
            }
            while let Some(input) = self.sorter.poll() {
                if let Input::FrameLine(line) = input
                    && let Ok(Some(body)) = self.frames.handle_line(&line)
                    && let Ok(v) = serde_json::from_slice::<Value>(&body)
                {
                    self.answers.push_back(v);
                }
            }
        }
    }
}

/// The text of a successful answer, or its error.
pub fn text_of(answer: &Value) -> Result<String> {
    if answer["ok"] == true {
        Ok(answer["text"].as_str().unwrap_or("").to_string())
    } else {
        bail!(
            "{}",
            answer["error"].as_str().unwrap_or("the station refused")
        )
    }
}

/// A word for a command line, quoted when it has spaces or quotes.
pub fn quote(word: &str) -> String {
    if !word.is_empty() && !word.contains([' ', '"', '\\', '\t']) {
        return word.to_string();
    }
    format!("\"{}\"", word.replace('\\', "\\\\").replace('"', "\\\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_with_spaces_are_quoted_as_the_station_reads_them() {
        for w in ["Hall B", "say \"hi\"", "back\\slash", "", "plain"] {
            let line = format!("wifi join {}", quote(w));
            let words = stagebox_console::command::words(&line).unwrap();
            assert_eq!(words[2], w, "{line}");
        }
    }
}
