//! Running the station's own tools (journalctl, rauc, ip, ping, systemctl, stationd) for a
//! console command: each with a time limit, its output bounded, killed if it outlives it.

use std::process::Stdio;
use std::time::Duration;

use futures_lite::{AsyncBufReadExt, StreamExt, future, io::BufReader};
use smol::process::Command;

/// The most output kept from one tool.
pub const MAX_OUTPUT: usize = 64 * 1024;

/// What a tool printed (standard output) when it succeeded; what it said and its exit status
/// when it did not, or that it is missing or too slow.
pub async fn run(program: &str, args: &[&str], limit: Duration) -> Result<String, String> {
    let child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn();
    let child = match child {
        Ok(c) => c,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(format!("`{program}` is not on this system"));
        }
        Err(e) => return Err(format!("`{program}`: {e}")),
    };
    let timed_out = async {
        smol::Timer::after(limit).await;
        Err(std::io::Error::from(std::io::ErrorKind::TimedOut))
    };
    match future::or(child.output(), timed_out).await {
        Ok(out) => {
            let mut text = bounded(&out.stdout);
            if out.status.success() {
                Ok(text)
            } else {
                let err = bounded(&out.stderr);
                if !err.trim().is_empty() {
                    text = format!("{}\n{}", text.trim_end(), err.trim_end());
                }
                Err(format!(
                    "`{program} {}` failed ({}): {}",
                    args.join(" "),
                    out.status,
                    text.trim()
                ))
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::TimedOut => Err(format!(
            "`{program}` gave no answer within {} s",
            limit.as_secs()
        )),
        Err(e) => Err(format!("`{program}`: {e}")),
    }
}

/// [`run`] for a command line from the service's settings (words split on spaces).
pub async fn run_line(line: &str, limit: Duration) -> Result<String, String> {
    let words: Vec<&str> = line.split_whitespace().collect();
    let Some((program, args)) = words.split_first() else {
        return Err("no command configured".into());
    };
    run(program, args, limit).await
}

/// Follows a tool's output line by line (`journalctl -f`, `rauc install`), handing each line
/// to `each` until the tool ends, `each` says stop, or `stop` resolves; the tool is killed
/// then. Returns whether the tool ended by itself with success.
pub async fn follow<F, S>(
    program: &str,
    args: &[&str],
    mut each: F,
    stop: S,
) -> Result<bool, String>
where
    F: FnMut(String) -> bool,
    S: std::future::Future<Output = ()>,
{
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => format!("`{program}` is not on this system"),
            _ => format!("`{program}`: {e}"),
        })?;
    let stdout = child.stdout.take().ok_or("no output")?;
    let stderr = child.stderr.take().ok_or("no output")?;
    let mut lines = BufReader::new(stdout)
        .lines()
        .or(BufReader::new(stderr).lines());
    let reading = async {
        while let Some(line) = lines.next().await {
            let Ok(mut line) = line else { break };
            line.truncate(1024);
            if !each(line) {
                return false;
            }
        }
        true
    };
    let stopped = async {
        stop.await;
        false
    };
    let ended = future::or(reading, stopped).await;
    if !ended {
        let _ = child.kill();
        let _ = child.status().await;
        return Ok(false);
    }
    let status = child.status().await.map_err(|e| e.to_string())?;
    Ok(status.success())
}

fn bounded(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(MAX_OUTPUT)]).into_owned();
    if bytes.len() > MAX_OUTPUT {
        format!("{text}\n(cut at {MAX_OUTPUT} bytes)")
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tool_answers_fails_is_missing_or_is_too_slow() {
        smol::block_on(async {
            let limit = Duration::from_secs(10);
            assert_eq!(run("echo", &["hi"], limit).await, Ok("hi\n".into()));
            let failed = run("sh", &["-c", "echo no >&2; exit 3"], limit).await;
            assert!(failed.unwrap_err().contains("no"));
            let missing = run("no-such-tool-here", &[], limit).await;
            assert_eq!(
                missing,
                Err("`no-such-tool-here` is not on this system".into())
            );
            let slow = run("sleep", &["5"], Duration::from_millis(100)).await;
            assert!(slow.unwrap_err().contains("no answer"));
            let mut seen = Vec::new();
            let ended = follow(
                "printf",
                &["a\\nb\\nc\\n"],
                |l| {
                    seen.push(l);
                    seen.len() < 2
                },
                future::pending(),
            )
            .await;
            assert_eq!(ended, Ok(false));
            assert_eq!(seen, vec!["a".to_string(), "b".to_string()]);
        });
    }
}
