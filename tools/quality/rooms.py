"""Rooms for the echo canceller, noise suppressor and beamformer measurements.

Simulates a station in a room with pyroomacoustics (image-source method at 48 kHz, walls
absorbing for a target RT60): the microphone array of a board profile at table height, the
station's loudspeaker a hand's width (10 cm) behind and below the microphones, a talker 1 m in
front, three babbling talkers and a fan around the room. The loudspeaker distorts a little
(a small driver loud: a cubic term, about 2.5 % at the peaks) and every microphone hisses
(self-noise at -70 dBFS), as real ones do. Writes, for one room, the components
as the microphones pick them up and the mixtures the measurements run through the station's
chain, all 16-bit WAV at 48 kHz:

  ref.wav          mono   what the station plays (the far end): the echo canceller's reference
  near_dry.wav     mono   the talker's speech as spoken (the reference for PESQ)
  echo.wav         N ch   the loudspeaker at the microphones, 20 ms after ref (sound-card buffers)
  near.wav         N ch   the talker at the microphones
  doubletalk.wav   N ch   near + echo (the talker speaks while the far end plays)
  babble.wav, fan.wav           N ch   the noise alone, scaled as in the mixtures below
  near_babble.wav, near_fan.wav N ch   near + noise at 5 dB SNR on the first microphone

usage: rooms.py ROOM OUT_DIR FAR.wav NEAR.wav BABBLE1.wav BABBLE2.wav BABBLE3.wav GEOMETRY
ROOM: office (5 x 4 x 3 m, RT60 0.35 s) or hall (12 x 9 x 4 m, RT60 0.7 s). GEOMETRY: the
board's mic_geometry_mm as "x,y,z;x,y,z;..." (x right, y forward, z up). Prints one JSON
line describing the room.
"""

import json
import sys
import wave

import numpy as np
import pyroomacoustics as pra

RATE = 48_000
SNR_DB = 5.0
SPEAKER_LATENCY_S = 0.020
MIC_NOISE_DBFS = -70.0

ROOMS = {
    "office": {"dim": [5.0, 4.0, 3.0], "rt60": 0.35, "station": [2.0, 1.6, 0.8]},
    "hall": {"dim": [12.0, 9.0, 4.0], "rt60": 0.7, "station": [5.0, 3.5, 0.8]},
}


def read(path):
    with wave.open(path) as w:
        assert w.getframerate() == RATE and w.getsampwidth() == 2
        x = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16).astype(np.float64)
        return x.reshape(-1, w.getnchannels())[:, 0] / 32768.0


def write(path, x):
    x = np.atleast_2d(x)
    if x.shape[0] < x.shape[1]:
        x = x.T
    pcm = np.clip(np.round(x * 32768.0), -32768, 32767).astype("<i2")
    with wave.open(path, "wb") as w:
        w.setnchannels(pcm.shape[1])
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(pcm.tobytes())


def fit(x, n):
    """x repeated or cut to n samples."""
    reps = int(np.ceil(n / len(x)))
    return np.tile(x, reps)[:n]


def fan_noise(n, rng):
    """Broadband fan noise: brown-ish noise with a blade tone at 120 Hz and its harmonics."""
    white = rng.standard_normal(n)
    spectrum = np.fft.rfft(white)
    f = np.fft.rfftfreq(n, 1.0 / RATE)
    spectrum /= np.maximum(f, 50.0) ** 0.7
    noise = np.fft.irfft(spectrum, n)
    t = np.arange(n) / RATE
    for k, a in [(1, 0.5), (2, 0.25), (3, 0.12)]:
        noise += a * np.std(noise) * np.sin(2 * np.pi * 120.0 * k * t)
    return noise / np.max(np.abs(noise))


def simulate(room_name, geometry_mm, sources):
    """The N-channel signal each (signal, position, delay_s) source makes at the microphones."""
    spec = ROOMS[room_name]
    absorption, max_order = pra.inverse_sabine(spec["rt60"], spec["dim"])
    centre = np.array(spec["station"])
    mics = np.array([centre + np.array(p) / 1000.0 for p in geometry_mm]).T
    out = []
    for signal, position, delay in sources:
        room = pra.ShoeBox(
            spec["dim"],
            fs=RATE,
            materials=pra.Material(absorption),
            max_order=min(max_order, 12),
            air_absorption=True,
        )
        room.add_source(list(centre + np.array(position)), signal=signal, delay=delay)
        room.add_microphone_array(mics)
        room.simulate()
        out.append(room.mic_array.signals)
    return out, spec


def main():
    room_name, out_dir, far_p, near_p, b1, b2, b3, geometry = sys.argv[1:9]
    geometry_mm = [[float(v) for v in p.split(",")] for p in geometry.split(";")]
    rng = np.random.default_rng(7)
    far = read(far_p)
    near_dry = read(near_p)
    n = max(len(far), len(near_dry)) + RATE
    far = fit(far, n) * 0.5
    # The talker starts speaking 3 s in, while the far end is still talking: double talk
    # after the echo canceller had time to converge.
    near_dry = np.concatenate([np.zeros(3 * RATE), near_dry])[:n]
    near_dry = np.pad(near_dry, (0, n - len(near_dry)))
    babble = [fit(read(p), n) for p in (b1, b2, b3)]
    babble = [np.roll(b, k * RATE // 3) for k, b in enumerate(babble)]
    fan = fan_noise(n, rng) * 0.3
    played = far - 0.1 * far**3
    sources = [
        (played, [0.0, -0.08, -0.06], SPEAKER_LATENCY_S),  # loudspeaker: behind, below
        (near_dry, [0.0, 1.0, 0.5], 0.0),  # talker: 1 m in front, standing
        (babble[0], [-1.5, 1.2, 0.6], 0.0),
        (babble[1], [1.4, -1.0, 0.6], 0.0),
        (babble[2], [-1.2, -1.3, 0.7], 0.0),
        (fan, [1.6, 0.3, 1.2], 0.0),
    ]
    signals, spec = simulate(room_name, geometry_mm, sources)
    length = min(s.shape[1] for s in signals)
    echo, near, b0, b1s, b2s, fan_m = (s[:, :length] for s in signals)
    babble_m = b0 + b1s + b2s
    talking = np.abs(near[0]) > 0

    def at_snr(noise):
        p_speech = np.mean(near[0, talking] ** 2)
        p_noise = np.mean(noise[0] ** 2)
        return noise * np.sqrt(p_speech / p_noise / 10 ** (SNR_DB / 10))

    babble_m = at_snr(babble_m)
    fan_m = at_snr(fan_m)
    peak = max(np.max(np.abs(x)) for x in (echo + near, near + babble_m, near + fan_m))
    scale = 0.7 / peak
    hiss = rng.standard_normal(echo.shape) * 10 ** (MIC_NOISE_DBFS / 20) / scale
    write(f"{out_dir}/ref.wav", far[:length])
    write(f"{out_dir}/near_dry.wav", near_dry[:length])
    for name, x in [
        ("echo", echo + hiss),
        ("near", near + hiss),
        ("doubletalk", near + echo + hiss),
        ("babble", babble_m + hiss),
        ("fan", fan_m + hiss),
        ("near_babble", near + babble_m + hiss),
        ("near_fan", near + fan_m + hiss),
    ]:
        write(f"{out_dir}/{name}.wav", x * scale)
    print(
        json.dumps(
            {
                "room": room_name,
                "dimensions_m": spec["dim"],
                "rt60_s": spec["rt60"],
                "microphones": len(geometry_mm),
                "loudspeaker_from_array_m": 0.1,
                "talker_distance_m": 1.12,
                "snr_db_first_mic": SNR_DB,
                "mic_self_noise_dbfs": MIC_NOISE_DBFS,
                "echo_to_talker_db_first_mic": 10
                * np.log10(np.mean(echo[0] ** 2) / np.mean(near[0, talking] ** 2)),
                "seconds": length / RATE,
            }
        )
    )


if __name__ == "__main__":
    main()
