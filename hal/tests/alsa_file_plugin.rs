//! The ALSA backend against real alsa-lib, with no sound card: the `file` plugin captures
//! from a raw file (`infile`) and plays into a file, over the `null` plugin. The test points
//! `ALSA_CONFIG_PATH` at a configuration of its own, so it needs nothing of the machine's.
#![cfg(feature = "alsa")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use stagebox_hal::alsa::{AlsaCapture, AlsaPlayback};
use stagebox_hal::{AudioCapture, AudioPlayback, StreamFormat};

#[test]
fn capture_reads_the_infile_and_playback_writes_the_outfile() {
    let dir = std::env::temp_dir().join(format!("stagebox-alsa-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let infile = dir.join("mic.raw");
    let outfile = dir.join("speaker.raw");
    // Ten periods of a ramp, as raw S16 little-endian.
    let source: Vec<i16> = (0..4800).map(|i| (i * 7 % 20000) as i16).collect();
    std::fs::write(
        &infile,
        source
            .iter()
            .flat_map(|s| s.to_le_bytes())
            .collect::<Vec<u8>>(),
    )
    .unwrap();
    let conf = dir.join("asound.conf");
    std::fs::write(
        &conf,
        format!(
            "pcm.mic {{ type file slave {{ pcm {{ type null }} }} file \"/dev/null\" infile \"{}\" format \"raw\" }}\n\
             pcm.speaker {{ type file slave {{ pcm {{ type null }} }} file \"{}\" format \"raw\" }}\n",
            infile.display(),
            outfile.display()
        ),
    )
    .unwrap();
    // SAFETY: this test binary has this one test, so no other thread reads the environment,
    // and alsa-lib reads ALSA_CONFIG_PATH when the first device opens below.
    #[allow(unsafe_code)]
    unsafe {
        std::env::set_var("ALSA_CONFIG_PATH", &conf);
    }

    let mut capture =
        AlsaCapture::open("mic", StreamFormat::mono()).expect("opening the capture device");
    let mut got = Vec::new();
    let mut period = [0i16; 480];
    for _ in 0..10 {
        capture.read(&mut period).unwrap();
        got.extend_from_slice(&period);
    }
    assert!(
        got == source,
        "captured something other than the infile holds"
    );

    let mut playback =
        AlsaPlayback::open("speaker", StreamFormat::mono()).expect("opening the playback device");
    for chunk in source.chunks(480) {
        playback.write(chunk).unwrap();
    }
    assert!(
        playback.write(&[0i16; 3]).is_err(),
        "a wrong-sized period is refused"
    );
    drop(playback);
    let written = std::fs::read(&outfile).unwrap();
    let written: Vec<i16> = written
        .chunks_exact(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]))
        .collect();
    assert_eq!(
        written.len(),
        source.len(),
        "played everything into the outfile"
    );
    assert!(
        written == source,
        "played something other than what was written"
    );

    let err = match AlsaCapture::open("no-such-device", StreamFormat::mono()) {
        Ok(_) => panic!("opened a device that does not exist"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains("no-such-device"), "{err}");

    // A device reopened again and again (a station retrying a card that comes and goes)
    // closes what it opened each time: the process's descriptors stay flat.
    let descriptors = || std::fs::read_dir("/proc/self/fd").unwrap().count();
    drop(capture);
    let before = descriptors();
    for _ in 0..50 {
        let c = AlsaCapture::open("mic", StreamFormat::mono()).unwrap();
        let p = AlsaPlayback::open("speaker", StreamFormat::mono()).unwrap();
        drop((c, p));
    }
    assert!(
        descriptors() <= before + 2,
        "descriptors grew from {before} to {} over 50 reopenings",
        descriptors()
    );
    let _ = std::fs::remove_dir_all(&dir);
}
