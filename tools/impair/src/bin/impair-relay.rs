//! `impair-relay`: a seeded bad link between UDP clients (stations) and an upstream (a stage
//! server's media port). Each client gets its own upstream socket, so the server sees one
//! address per station, as it would through a NAT.
//!
//! ```text
//! impair-relay --listen 127.0.0.1:40000 --upstream 127.0.0.1:50000 [options]
//!   --seed N                 the randomness (default 1): same seed, same traffic, same result
//!   --loss PCT               random loss
//!   --gilbert PBAD,PGOOD[,LOSS]  burst loss: percent chances to enter / leave the bad state,
//!                            loss in it (default 100)
//!   --delay MS --jitter MS   fixed delay, and a uniform ± variation around it
//!   --reorder PCT [--reorder-by MS]   hold some datagrams back (default 25 ms)
//!   --duplicate PCT          deliver some twice
//!   --blackout AT_MS:FOR_MS  nothing gets through in that window (repeatable)
//!   --direction both|up|down which way the impairments apply (up: towards the server)
//!   --for SECONDS            stop by itself after this long
//! ```
//! On exit (the time is up, SIGINT or SIGTERM) it prints what it did as one JSON line.

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use stagebox_impair::{Blackout, Direction, Gilbert, Impairment, Profile};

const USAGE: &str = "usage: impair-relay --listen ADDR --upstream ADDR [--seed N] [--loss PCT]
  [--gilbert PBAD,PGOOD[,LOSS]] [--delay MS] [--jitter MS] [--reorder PCT] [--reorder-by MS]
  [--duplicate PCT] [--blackout AT_MS:FOR_MS]... [--direction both|up|down] [--for SECONDS]";

/// Clients served at most; datagrams from more are dropped.
const MAX_CLIENTS: usize = 256;
/// How long a blocking receive waits before it looks at the stop flag.
const RECV_TIMEOUT: Duration = Duration::from_millis(100);

struct Options {
    listen: SocketAddr,
    upstream: SocketAddr,
    seed: u64,
    profile: Profile,
    run_for: Option<Duration>,
}

fn value<'a>(args: &'a [String], i: usize, flag: &str) -> Result<&'a str> {
    args.get(i + 1)
        .map(String::as_str)
        .with_context(|| format!("{flag} needs a value"))
}

fn percent(text: &str, flag: &str) -> Result<f64> {
    match text.parse::<f64>() {
        Ok(v) if (0.0..=100.0).contains(&v) => Ok(v / 100.0),
        _ => bail!("{flag}: {text:?} is not a percentage from 0 to 100"),
    }
}

fn millis(text: &str, flag: &str) -> Result<Duration> {
    text.parse::<u64>()
        .map(Duration::from_millis)
        .with_context(|| format!("{flag}: {text:?} is not a whole number of milliseconds"))
}

fn parse(args: &[String]) -> Result<Options> {
    let (mut listen, mut upstream, mut seed, mut run_for) = (None, None, 1u64, None);
    let mut profile = Profile::clean();
    let mut i = 0;
    while i < args.len() {
        let flag = args[i].as_str();
        let v = || value(args, i, flag);
        match flag {
            "--listen" => listen = Some(v()?.parse().context("--listen: not an address")?),
            "--upstream" => upstream = Some(v()?.parse().context("--upstream: not an address")?),
            "--seed" => seed = v()?.parse().context("--seed: not a number")?,
            "--loss" => profile.loss = percent(v()?, flag)?,
            "--gilbert" => {
                let parts: Vec<&str> = v()?.split(',').collect();
                if !(2..=3).contains(&parts.len()) {
                    bail!("--gilbert takes PBAD,PGOOD[,LOSS] in percent");
                }
                profile.gilbert = Some(Gilbert {
                    p_bad: percent(parts[0], flag)?,
                    p_good: percent(parts[1], flag)?,
                    loss_in_bad: parts.get(2).map_or(Ok(1.0), |p| percent(p, flag))?,
                });
            }
            "--delay" => profile.delay = millis(v()?, flag)?,
            "--jitter" => profile.jitter = millis(v()?, flag)?,
            "--reorder" => profile.reorder = percent(v()?, flag)?,
            "--reorder-by" => profile.reorder_by = millis(v()?, flag)?,
            "--duplicate" => profile.duplicate = percent(v()?, flag)?,
            "--blackout" => {
                let (at, length) = v()?
                    .split_once(':')
                    .context("--blackout takes AT_MS:FOR_MS")?;
                profile.blackouts.push(Blackout {
                    at: millis(at, flag)?,
                    length: millis(length, flag)?,
                });
            }
            "--direction" => {
                (profile.up, profile.down) = match v()? {
                    "both" => (true, true),
                    "up" => (true, false),
                    "down" => (false, true),
                    other => bail!("--direction: {other:?} is not both, up or down"),
                }
            }
            "--for" => {
                run_for = Some(Duration::from_secs_f64(
                    v()?.parse::<f64>()
                        .context("--for: not a number of seconds")?,
                ))
            }
            "--help" | "-h" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => bail!("unknown argument {other:?} (try --help)"),
        }
        i += 2;
    }
    Ok(Options {
        listen: listen.context("--listen is needed")?,
        upstream: upstream.context("--upstream is needed")?,
        seed,
        profile,
        run_for,
    })
}

struct Relay {
    core: Mutex<Impairment>,
    due: Condvar,
    clients: Mutex<Vec<(SocketAddr, Arc<UdpSocket>)>>,
    listen: UdpSocket,
    upstream: SocketAddr,
    stop: Arc<AtomicBool>,
}

impl Relay {
    fn core(&self) -> MutexGuard<'_, Impairment> {
        self.core.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn take(&self, now: Instant, direction: Direction, client: usize, bytes: &[u8]) {
        self.core().handle_datagram(now, direction, client, bytes);
        self.due.notify_one();
    }

    /// The client's index, giving it an upstream socket (and a thread reading it) if new.
    fn client(self: &Arc<Self>, from: SocketAddr) -> Option<usize> {
        let mut clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(i) = clients.iter().position(|(a, _)| *a == from) {
            return Some(i);
        }
        if clients.len() >= MAX_CLIENTS {
            return None;
        }
        let bind: SocketAddr = if self.upstream.is_ipv4() {
            ([127, 0, 0, 1], 0).into()
        } else {
            (std::net::Ipv6Addr::LOCALHOST, 0).into()
        };
        let socket = UdpSocket::bind(bind).ok()?;
        socket.set_read_timeout(Some(RECV_TIMEOUT)).ok()?;
        let socket = Arc::new(socket);
        let index = clients.len();
        clients.push((from, socket.clone()));
        let relay = self.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 2048];
            while !relay.stop.load(Ordering::Relaxed) {
                if let Ok((n, src)) = socket.recv_from(&mut buf)
                    && src == relay.upstream
                {
                    relay.take(Instant::now(), Direction::Down, index, &buf[..n]);
                }
            }
        });
        Some(index)
    }

    fn receive_from_clients(self: &Arc<Self>) {
        let mut buf = [0u8; 2048];
        while !self.stop.load(Ordering::Relaxed) {
            if let Ok((n, from)) = self.listen.recv_from(&mut buf)
                && let Some(index) = self.client(from)
            {
                self.take(Instant::now(), Direction::Up, index, &buf[..n]);
            }
        }
    }

    fn deliver(&self) {
        let mut core = self.core();
        while !self.stop.load(Ordering::Relaxed) {
            let now = Instant::now();
            while let Some((direction, client, bytes)) = core.poll_datagram(now) {
                let clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
                if let Some((addr, socket)) = clients.get(client) {
                    let _ = match direction {
                        Direction::Up => socket.send_to(&bytes, self.upstream),
                        Direction::Down => self.listen.send_to(&bytes, addr),
                    };
                }
            }
            let wait = core
                .poll_timeout()
                .map_or(RECV_TIMEOUT, |t| t.saturating_duration_since(now))
                .min(RECV_TIMEOUT);
            core = match self.due.wait_timeout(core, wait) {
                Ok((guard, _)) => guard,
                Err(p) => p.into_inner().0,
            };
        }
    }
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let opts = parse(&args)?;
    let listen = UdpSocket::bind(opts.listen)
        .with_context(|| format!("cannot listen on {}", opts.listen))?;
    listen.set_read_timeout(Some(RECV_TIMEOUT))?;
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, stop.clone()).context("signal handler")?;
    }
    let start = Instant::now();
    let relay = Arc::new(Relay {
        core: Mutex::new(Impairment::new(opts.profile, opts.seed, start)),
        due: Condvar::new(),
        clients: Mutex::new(Vec::new()),
        listen,
        upstream: opts.upstream,
        stop: stop.clone(),
    });
    eprintln!(
        "impair-relay: {} -> {}, seed {}",
        opts.listen, opts.upstream, opts.seed
    );
    let receiver = {
        let relay = relay.clone();
        std::thread::spawn(move || relay.receive_from_clients())
    };
    let deliverer = {
        let relay = relay.clone();
        std::thread::spawn(move || relay.deliver())
    };
    while !stop.load(Ordering::Relaxed) {
        if opts.run_for.is_some_and(|d| start.elapsed() >= d) {
            stop.store(true, Ordering::Relaxed);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    relay.due.notify_all();
    let _ = receiver.join();
    let _ = deliverer.join();
    let s = relay.core().stats();
    println!(
        "{{\"received\":{},\"delivered\":{},\"lost_random\":{},\"lost_burst\":{},\"lost_blackout\":{},\"duplicated\":{},\"reordered\":{},\"dropped_full\":{}}}",
        s.received,
        s.delivered,
        s.lost_random,
        s.lost_burst,
        s.lost_blackout,
        s.duplicated,
        s.reordered,
        s.dropped_full
    );
    Ok(())
}
