//! Files that travel over the console line in pieces: an update bundle the host tool pushes
//! (kept until `update install`), and the support bundle it fetches. A push survives a pulled
//! cable: what arrived stays, and the host goes on from the figure the station answers.

use std::fs;
use std::io::{Read as _, Seek as _, SeekFrom, Write as _};
use std::path::{Path, PathBuf};

use base64::Engine as _;
use stagebox_console::command::PushChunk;

/// The largest bundle the station takes over the line.
pub const MAX_PUSH: u64 = 1 << 30;
/// The most bytes one fetch answers (its base64 fits a frame with room to spare).
pub const MAX_FETCH: u32 = 2048;

/// Where a push is kept, under the console's spool folder.
#[derive(Debug, Clone)]
pub struct Spool {
    dir: PathBuf,
}

impl Spool {
    pub fn new(dir: &Path) -> Spool {
        Spool {
            dir: dir.to_path_buf(),
        }
    }

    fn part(&self) -> PathBuf {
        self.dir.join("push.part")
    }

    fn meta(&self) -> PathBuf {
        self.dir.join("push.meta")
    }

    /// A pushed bundle that arrived whole and matched its SHA-256.
    pub fn pushed_bundle(&self) -> Option<PathBuf> {
        let p = self.dir.join("pushed.raucb");
        p.exists().then_some(p)
    }

    pub fn support_bundle(&self) -> PathBuf {
        self.dir.join("support-bundle.tar.gz")
    }

    /// Takes one piece; answers `{"have": N, "complete": bool}` (N: the bytes held, where
    /// the next piece must start).
    pub fn push(&self, chunk: &PushChunk) -> Result<String, String> {
        if chunk.size == 0 || chunk.size > MAX_PUSH {
            return Err(format!(
                "a bundle of {} bytes: the station takes 1 byte to {MAX_PUSH}",
                chunk.size
            ));
        }
        let sha = chunk.sha256.to_ascii_lowercase();
        if sha.len() != 64 || !sha.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err("sha256 must be 64 hex digits".into());
        }
        fs::create_dir_all(&self.dir).map_err(|e| format!("{}: {e}", self.dir.display()))?;
        let meta = format!("{} {sha}", chunk.size);
        let same = fs::read_to_string(self.meta()).is_ok_and(|m| m == meta);
        if !same {
            // Another bundle (or none yet): start afresh.
            let _ = fs::remove_file(self.dir.join("pushed.raucb"));
            fs::write(self.part(), b"").map_err(|e| e.to_string())?;
            fs::write(self.meta(), &meta).map_err(|e| e.to_string())?;
        }
        let have = fs::metadata(self.part()).map(|m| m.len()).unwrap_or(0);
        if chunk.offset != have || chunk.data.is_empty() {
            return Ok(answer(have, false));
        }
        let end = have + chunk.data.len() as u64;
        if end > chunk.size {
            return Err(format!("{end} bytes is past the bundle's {}", chunk.size));
        }
        let mut f = fs::OpenOptions::new()
            .append(true)
            .open(self.part())
            .map_err(|e| e.to_string())?;
        f.write_all(&chunk.data)
            .map_err(|e| format!("storing the bundle: {e}"))?;
        if end < chunk.size {
            return Ok(answer(end, false));
        }
        f.sync_all().map_err(|e| e.to_string())?;
        let got = sha256_of(&self.part())?;
        let _ = fs::remove_file(self.meta());
        if got != sha {
            let _ = fs::remove_file(self.part());
            return Err(format!(
                "the bundle arrived with SHA-256 {got}, not {sha}: push it again"
            ));
        }
        fs::rename(self.part(), self.dir.join("pushed.raucb")).map_err(|e| e.to_string())?;
        Ok(answer(end, true))
    }

    /// Up to `len` bytes of the support bundle from `offset`, as
    /// `{"size": …, "offset": …, "data": "<base64>"}`.
    pub fn fetch(&self, offset: u64, len: u32) -> Result<String, String> {
        let path = self.support_bundle();
        let mut f = fs::File::open(&path)
            .map_err(|_| "no support bundle yet: run support-bundle first".to_string())?;
        let size = f.metadata().map_err(|e| e.to_string())?.len();
        if offset > size {
            return Err(format!("offset {offset} is past the bundle's {size} bytes"));
        }
        f.seek(SeekFrom::Start(offset)).map_err(|e| e.to_string())?;
        let mut buf = vec![0u8; len.min(MAX_FETCH) as usize];
        let mut n = 0;
        while n < buf.len() {
            match f.read(&mut buf[n..]) {
                Ok(0) => break,
                Ok(k) => n += k,
                Err(e) => return Err(e.to_string()),
            }
        }
        buf.truncate(n);
        Ok(serde_json::json!({
            "size": size,
            "offset": offset,
            "data": base64::engine::general_purpose::STANDARD.encode(&buf),
        })
        .to_string())
    }
}

fn answer(have: u64, complete: bool) -> String {
    serde_json::json!({"have": have, "complete": complete}).to_string()
}

/// The SHA-256 of a file, hex.
pub fn sha256_of(path: &Path) -> Result<String, String> {
    let mut f = fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match f.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => ctx.update(&buf[..n]),
            Err(e) => return Err(e.to_string()),
        }
    }
    Ok(hex::encode(ctx.finish()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sha(data: &[u8]) -> String {
        hex::encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, data))
    }

    fn chunk(all: &[u8], offset: usize, len: usize) -> PushChunk {
        PushChunk {
            size: all.len() as u64,
            sha256: sha(all),
            offset: offset as u64,
            data: all[offset..(offset + len).min(all.len())].to_vec(),
        }
    }

    #[test]
    fn a_push_resumes_where_it_stopped_and_is_checked_whole() {
        let dir = std::env::temp_dir().join(format!("stagebox-spool-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let spool = Spool::new(&dir);
        let all: Vec<u8> = (0..10_000u32).map(|i| (i * 7) as u8).collect();
        assert_eq!(
            spool.push(&chunk(&all, 0, 4000)).unwrap(),
            answer(4000, false)
        );
        // The cable was pulled: the host asks where to go on (an empty piece at 0).
        assert_eq!(spool.push(&chunk(&all, 0, 0)).unwrap(), answer(4000, false));
        // A piece from the wrong place is not written.
        assert_eq!(
            spool.push(&chunk(&all, 2000, 100)).unwrap(),
            answer(4000, false)
        );
        assert_eq!(
            spool.push(&chunk(&all, 4000, 6000)).unwrap(),
            answer(10_000, true)
        );
        let pushed = spool.pushed_bundle().unwrap();
        assert_eq!(fs::read(&pushed).unwrap(), all);
        // A bundle whose bytes do not match its SHA-256 is thrown away.
        let mut bad = chunk(&all, 0, 10_000);
        bad.sha256 = sha(b"other");
        assert!(spool.push(&bad).unwrap_err().contains("push it again"));
        assert!(spool.pushed_bundle().is_none());
        assert!(spool.push(&PushChunk { size: 0, ..bad }).is_err());
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_support_bundle_is_fetched_in_pieces() {
        let dir = std::env::temp_dir().join(format!("stagebox-fetch-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let spool = Spool::new(&dir);
        assert!(spool.fetch(0, 10).is_err());
        fs::create_dir_all(&dir).unwrap();
        fs::write(spool.support_bundle(), b"0123456789").unwrap();
        let piece: serde_json::Value = serde_json::from_str(&spool.fetch(8, 10).unwrap()).unwrap();
        assert_eq!(piece["size"], 10);
        assert_eq!(piece["data"], "ODk=");
        assert!(spool.fetch(11, 1).is_err());
        let _ = fs::remove_dir_all(&dir);
    }
}
