//! The console's commands: their table (what `help` lists and Tab completes), what each may
//! do without the PIN, and the parser from a typed line (or a machine frame's command text)
//! to a [`Command`]. Words are split on spaces; double quotes keep spaces in one word (a
//! Wi-Fi name). Nothing here runs anything.

use thiserror::Error;

/// Who may run a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Reads only: allowed without the PIN where the owner allows it.
    Read,
    /// Changes, noise, secrets or a reboot: only after the PIN.
    Change,
}

/// One line of the command table.
#[derive(Debug, Clone, Copy)]
pub struct Spec {
    /// The words that name it (`["update", "push"]`).
    pub words: &'static [&'static str],
    /// Its arguments, as help shows them.
    pub args: &'static str,
    pub help: &'static str,
    pub access: Access,
}

const fn spec(
    words: &'static [&'static str],
    args: &'static str,
    help: &'static str,
    access: Access,
) -> Spec {
    Spec {
        words,
        args,
        help,
        access,
    }
}

use Access::{Change, Read};

/// Every command, in the order `help` lists them.
pub const COMMANDS: &[Spec] = &[
    spec(&["help"], "[COMMAND]", "what each command does", Read),
    spec(
        &["login"],
        "",
        "enter the station's console PIN (on its label)",
        Read,
    ),
    spec(
        &["logout"],
        "",
        "end the session (Ctrl-D on an empty line too)",
        Read,
    ),
    spec(
        &["status"],
        "",
        "role, stage, server, connection and why, version, slot, uptime, last errors",
        Read,
    ),
    spec(
        &["net"],
        "",
        "addresses, Wi-Fi signal, gateway round trip, voice node reachability, certificate",
        Read,
    ),
    spec(
        &["audio", "levels"],
        "",
        "live level of each microphone (a key stops it)",
        Read,
    ),
    spec(&["audio", "tone"], "", "a test tone on the speaker", Change),
    spec(
        &["audio", "chirp"],
        "",
        "a chirp from the speaker to the microphones: delay and echo level",
        Change,
    ),
    spec(
        &["buttons"],
        "",
        "live button presses (a key stops it)",
        Read,
    ),
    spec(
        &["leds"],
        "",
        "every state of the LED language in turn (a key stops watching)",
        Change,
    ),
    spec(
        &["logs"],
        "[-f] [TEXT]",
        "the station's log, its last lines or followed (-f), those with TEXT",
        Read,
    ),
    spec(
        &["config", "get"],
        "[KEY]",
        "the configuration, or one key (secrets hidden)",
        Read,
    ),
    spec(
        &["config", "set"],
        "KEY VALUE",
        "change one key: checked, then applied",
        Change,
    ),
    spec(
        &["config", "validate"],
        "",
        "check the configuration file as it is",
        Read,
    ),
    spec(&["wifi", "scan"], "", "the Wi-Fi networks in reach", Read),
    spec(
        &["wifi", "join"],
        "NAME",
        "join a Wi-Fi network (the password is asked for, not shown)",
        Change,
    ),
    spec(
        &["update", "status"],
        "",
        "version, slots, the update in progress and the last problem",
        Read,
    ),
    spec(&["update", "check"], "", "look for an update now", Change),
    spec(
        &["update", "install"],
        "[downgrade VERSION]",
        "install the bundle pushed over this line (newer only, unless its older VERSION is named), or look for an update",
        Change,
    ),
    spec(
        &["update", "mark-good"],
        "",
        "mark the running slot good",
        Change,
    ),
    spec(
        &["update", "rollback"],
        "",
        "boot the other slot next",
        Change,
    ),
    spec(&["reboot"], "", "restart the station", Change),
    spec(
        &["factory-reset"],
        "",
        "erase the configuration and data (asks to confirm)",
        Change,
    ),
    spec(
        &["support-bundle"],
        "",
        "logs, configuration and metrics, secrets removed, for the host tool",
        Change,
    ),
];

/// A password or other secret on its way to the plumbing: never printed by `{:?}`.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// A piece of an update bundle the host tool pushes over the line (machine mode only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushChunk {
    /// The whole bundle's size and SHA-256 (hex): a push of another bundle starts afresh.
    pub size: u64,
    pub sha256: String,
    /// Where `data` goes; the plumbing answers with how much it holds, and a piece that
    /// does not start there is refused with that figure, so a host resumes where it stopped.
    pub offset: u64,
    pub data: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Help(Option<String>),
    Login,
    Logout,
    Status,
    Net,
    AudioLevels,
    AudioTone,
    AudioChirp,
    Buttons,
    Leds,
    Logs {
        follow: bool,
        filter: Option<String>,
    },
    ConfigGet(Option<String>),
    ConfigSet {
        key: String,
        value: String,
    },
    ConfigValidate,
    WifiScan,
    /// The session asks for the password (hidden) before it is run; empty for an open
    /// network.
    WifiJoin {
        name: String,
        password: Secret,
    },
    UpdateStatus,
    UpdateCheck,
    /// Install the bundle pushed over the line: only a newer version than the one running,
    /// unless the technician names the older (or failed) version they mean to install.
    UpdateInstall {
        downgrade_to: Option<String>,
    },
    UpdateMarkGood,
    UpdateRollback,
    Reboot,
    /// Run only once the person typed the station's name (or the host tool sent
    /// `"confirm": true`).
    FactoryReset,
    SupportBundle,
    /// Machine mode: a piece of a bundle pushed for `update install`.
    Push(PushChunk),
    /// Machine mode: up to `len` bytes of the last support bundle from `offset`.
    Fetch {
        offset: u64,
        len: u32,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ParseError {
    #[error("unknown command {0:?} (try `help`)")]
    Unknown(String),
    #[error("`{0}` needs one of: {1}")]
    Incomplete(String, String),
    #[error("usage: {0}")]
    Usage(String),
    #[error("a quote is not closed")]
    OpenQuote,
    #[error("too many words")]
    TooManyWords,
}

/// The most words a command line may have.
const MAX_WORDS: usize = 16;

/// Splits a line into words: spaces separate, double quotes group, `\"` and `\\` inside
/// quotes are a quote and a backslash.
pub fn words(line: &str) -> Result<Vec<String>, ParseError> {
    let mut out = Vec::new();
    let mut word: Option<String> = None;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                let w = word.get_or_insert_with(String::new);
                loop {
                    match chars.next() {
                        None => return Err(ParseError::OpenQuote),
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(e @ ('"' | '\\')) => w.push(e),
                            Some(other) => {
                                w.push('\\');
                                w.push(other);
                            }
                            None => return Err(ParseError::OpenQuote),
                        },
                        Some(other) => w.push(other),
                    }
                }
            }
            c if c.is_whitespace() => {
                if let Some(w) = word.take() {
                    out.push(w);
                }
            }
            c => word.get_or_insert_with(String::new).push(c),
        }
        if out.len() > MAX_WORDS {
            return Err(ParseError::TooManyWords);
        }
    }
    out.extend(word);
    if out.len() > MAX_WORDS {
        return Err(ParseError::TooManyWords);
    }
    Ok(out)
}

/// The table's entry for `command`.
pub fn spec_of(command: &Command) -> &'static Spec {
    let words: &[&str] = match command {
        Command::Help(_) => &["help"],
        Command::Login => &["login"],
        Command::Logout => &["logout"],
        Command::Status => &["status"],
        Command::Net => &["net"],
        Command::AudioLevels => &["audio", "levels"],
        Command::AudioTone => &["audio", "tone"],
        Command::AudioChirp => &["audio", "chirp"],
        Command::Buttons => &["buttons"],
        Command::Leds => &["leds"],
        Command::Logs { .. } => &["logs"],
        Command::ConfigGet(_) => &["config", "get"],
        Command::ConfigSet { .. } => &["config", "set"],
        Command::ConfigValidate => &["config", "validate"],
        Command::WifiScan => &["wifi", "scan"],
        Command::WifiJoin { .. } => &["wifi", "join"],
        Command::UpdateStatus => &["update", "status"],
        Command::UpdateCheck => &["update", "check"],
        Command::UpdateInstall { .. } => &["update", "install"],
        Command::UpdateMarkGood => &["update", "mark-good"],
        Command::UpdateRollback => &["update", "rollback"],
        Command::Reboot => &["reboot"],
        Command::FactoryReset => &["factory-reset"],
        Command::SupportBundle | Command::Fetch { .. } => &["support-bundle"],
        Command::Push(_) => &["update", "install"],
    };
    COMMANDS
        .iter()
        .find(|s| s.words == words)
        .unwrap_or(&COMMANDS[0])
}

/// `spec`'s usage line.
pub fn usage(spec: &Spec) -> String {
    let name = spec.words.join(" ");
    if spec.args.is_empty() {
        name
    } else {
        format!("{name} {}", spec.args)
    }
}

/// A typed line as a command; `Ok(None)` for an empty line.
pub fn parse(line: &str) -> Result<Option<Command>, ParseError> {
    let w = words(line)?;
    let Some(first) = w.first() else {
        return Ok(None);
    };
    // The longest table entry whose words start the line.
    let found = COMMANDS
        .iter()
        .filter(|s| s.words.len() <= w.len() && s.words.iter().zip(&w).all(|(a, b)| a == b))
        .max_by_key(|s| s.words.len());
    let Some(spec) = found else {
        let subs: Vec<&str> = COMMANDS
            .iter()
            .filter(|s| s.words.len() > 1 && s.words[0] == first.as_str())
            .map(|s| s.words[1])
            .collect();
        if !subs.is_empty() {
            return Err(ParseError::Incomplete(first.clone(), subs.join(", ")));
        }
        return Err(ParseError::Unknown(first.clone()));
    };
    let args = &w[spec.words.len()..];
    let bad = || ParseError::Usage(usage(spec));
    let none = |c: Command| if args.is_empty() { Ok(c) } else { Err(bad()) };
    let command = match spec.words {
        ["help"] => match args {
            [] => Command::Help(None),
            rest => Command::Help(Some(rest.join(" "))),
        },
        ["login"] => none(Command::Login)?,
        ["logout"] => none(Command::Logout)?,
        ["status"] => none(Command::Status)?,
        ["net"] => none(Command::Net)?,
        ["audio", "levels"] => none(Command::AudioLevels)?,
        ["audio", "tone"] => none(Command::AudioTone)?,
        ["audio", "chirp"] => none(Command::AudioChirp)?,
        ["buttons"] => none(Command::Buttons)?,
        ["leds"] => none(Command::Leds)?,
        ["logs"] => {
            let follow = args.first().is_some_and(|a| a == "-f");
            let rest = &args[usize::from(follow)..];
            match rest {
                [] => Command::Logs {
                    follow,
                    filter: None,
                },
                [text] => Command::Logs {
                    follow,
                    filter: Some(text.clone()),
                },
                _ => return Err(bad()),
            }
        }
        ["config", "get"] => match args {
            [] => Command::ConfigGet(None),
            [key] => Command::ConfigGet(Some(key.clone())),
            _ => return Err(bad()),
        },
        ["config", "set"] => match args {
            [key, value] => Command::ConfigSet {
                key: key.clone(),
                value: value.clone(),
            },
            _ => return Err(bad()),
        },
        ["config", "validate"] => none(Command::ConfigValidate)?,
        ["wifi", "scan"] => none(Command::WifiScan)?,
        ["wifi", "join"] => match args {
            [name] => Command::WifiJoin {
                name: name.clone(),
                password: Secret::default(),
            },
            _ => return Err(bad()),
        },
        ["update", "status"] => none(Command::UpdateStatus)?,
        ["update", "check"] => none(Command::UpdateCheck)?,
        ["update", "install"] => match args {
            [] => Command::UpdateInstall { downgrade_to: None },
            [word, version] if word == "downgrade" => Command::UpdateInstall {
                downgrade_to: Some(version.clone()),
            },
            _ => return Err(bad()),
        },
        ["update", "mark-good"] => none(Command::UpdateMarkGood)?,
        ["update", "rollback"] => none(Command::UpdateRollback)?,
        ["reboot"] => none(Command::Reboot)?,
        ["factory-reset"] => none(Command::FactoryReset)?,
        ["support-bundle"] => none(Command::SupportBundle)?,
        _ => return Err(ParseError::Unknown(first.clone())),
    };
    Ok(Some(command))
}

/// What Tab offers after `before` (the text left of the cursor): the words that can follow,
/// and the longest text they share (to put on the line at once).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Completion {
    pub candidates: Vec<&'static str>,
    /// `before` extended by what every candidate shares (with a space when only one fits).
    pub line: String,
}

pub fn complete(before: &str) -> Completion {
    // The word being typed runs from the last whitespace (any, not only a space) to the end.
    let cut = before
        .char_indices()
        .rfind(|(_, c)| c.is_whitespace())
        .map_or(0, |(i, c)| i + c.len_utf8());
    let (head, partial) = before.split_at(cut);
    let typed: Vec<&str> = head.split_whitespace().collect();
    let mut candidates: Vec<&'static str> = COMMANDS
        .iter()
        .filter(|s| s.words.len() > typed.len() && s.words.iter().zip(&typed).all(|(a, b)| a == b))
        .map(|s| s.words[typed.len()])
        .filter(|w| w.starts_with(partial))
        .collect();
    candidates.dedup();
    let shared = match candidates.as_slice() {
        [] => partial.to_string(),
        [one] => format!("{one} "),
        many => {
            let first = many[0];
            let len = (partial.len()..=first.len())
                .rev()
                .find(|&n| many.iter().all(|c| c.get(..n) == first.get(..n)))
                .unwrap_or(partial.len());
            first[..len].to_string()
        }
    };
    Completion {
        candidates,
        line: format!("{head}{shared}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn completion_takes_any_whitespace_and_any_letters() {
        // Found by the fuzzer: a word of multi-byte letters before a carriage return.
        let c = complete("\u{9289}\r");
        assert_eq!(c.line, "\u{9289}\r");
        assert!(c.candidates.is_empty());
        assert_eq!(complete("upd\u{00e9}").candidates, Vec::<&str>::new());
        assert_eq!(complete("update\tst").line, "update\tstatus ");
    }

    #[test]
    fn every_table_entry_parses_to_the_command_whose_entry_it_is() {
        for s in COMMANDS {
            let args = match s.args {
                "KEY VALUE" => " server.stage hall",
                "NAME" | "[KEY]" | "[COMMAND]" => " x",
                "[-f] [TEXT]" => " -f error",
                _ => "",
            };
            let line = format!("{}{args}", s.words.join(" "));
            let c = parse(&line).unwrap().unwrap();
            assert_eq!(spec_of(&c).words, s.words, "{line}");
        }
    }

    #[test]
    fn arguments_quotes_and_mistakes() {
        assert_eq!(
            parse("wifi join \"Hall \\\"B\\\"\"").unwrap(),
            Some(Command::WifiJoin {
                name: "Hall \"B\"".into(),
                password: Secret::default()
            })
        );
        assert_eq!(
            parse("  logs  -f  ").unwrap(),
            Some(Command::Logs {
                follow: true,
                filter: None
            })
        );
        assert_eq!(parse("   ").unwrap(), None);
        assert_eq!(
            parse("update"),
            Err(ParseError::Incomplete(
                "update".into(),
                "status, check, install, mark-good, rollback".into()
            ))
        );
        assert_eq!(parse("sudo"), Err(ParseError::Unknown("sudo".into())));
        assert_eq!(parse("reboot now"), Err(ParseError::Usage("reboot".into())));
        assert_eq!(
            parse("config set server.stage"),
            Err(ParseError::Usage("config set KEY VALUE".into()))
        );
        assert_eq!(parse("wifi join \"open"), Err(ParseError::OpenQuote));
        assert_eq!(parse(&"a ".repeat(40)), Err(ParseError::TooManyWords));
    }

    #[test]
    fn what_changes_the_station_needs_the_pin() {
        for (line, access) in [
            ("status", Read),
            ("logs -f", Read),
            ("config get", Read),
            ("config set a b", Change),
            ("update install", Change),
            ("factory-reset", Change),
            ("audio tone", Change),
            ("support-bundle", Change),
        ] {
            let c = parse(line).unwrap().unwrap();
            assert_eq!(spec_of(&c).access, access, "{line}");
        }
    }

    #[test]
    fn tab_completes_words_and_lists_the_choices() {
        assert_eq!(complete("sta").line, "status ");
        assert_eq!(complete("up").line, "update ");
        let c = complete("update ");
        assert_eq!(
            c.candidates,
            vec!["status", "check", "install", "mark-good", "rollback"]
        );
        assert_eq!(c.line, "update ");
        assert_eq!(complete("update m").line, "update mark-good ");
        let c = complete("l");
        assert_eq!(c.candidates, vec!["login", "logout", "leds", "logs"]);
        assert_eq!(c.line, "l");
        assert_eq!(complete("lo").line, "log");
        assert_eq!(complete("zz").candidates, Vec::<&str>::new());
        assert_eq!(complete("").candidates.len(), 15);
    }
}
