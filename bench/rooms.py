"""Simulated rooms for the far-field test conversations: a phone lying on a table in a
shoebox room (image method, ``pyroomacoustics``), talkers around it, cafe-like babble from
the far end of the room and cutlery clatter, mixed at a chosen SNR.

All signals are 16 kHz mono float32; positions are metres, times seconds. Every random
choice comes from the ``numpy.random.Generator`` passed in, so a seed fixes the room.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

SAMPLE_RATE = 16_000
TABLE_HEIGHT = 0.76  # the phone lies on the table
MAX_ORDER = 40  # image-source order cap: the cost grows with its cube (see BENCHMARKS.md)
BABBLE_SOURCES = 4
CLATTER_SOURCES = 2
CLATTER_SHARE = 0.15  # of the noise power; the rest is babble
SELF_NOISE_DBFS = -66.0  # the phone microphone's own hiss, after the final level
TARGET_DBFS = -26.0  # the mixture's RMS

Signal = npt.NDArray[np.float32]


@dataclass(frozen=True)
class Room:
    """A shoebox room with the phone at ``mic`` and one position per talker, babble
    source and clatter source; ``rt60_s`` is the target, the image method's own (shorter
    where ``MAX_ORDER`` cuts the tail) is ``Rendered.rt60_measured_s``."""

    dims: tuple[float, float, float]
    rt60_s: float
    mic: tuple[float, float, float]
    talkers: tuple[tuple[float, float, float], ...]
    babble: tuple[tuple[float, float, float], ...]
    clatter: tuple[tuple[float, float, float], ...]
    snr_db: float

    def talker_distances(self) -> list[float]:
        return [round(float(np.linalg.norm(np.subtract(t, self.mic))), 2) for t in self.talkers]


@dataclass(frozen=True)
class Rendered:
    """What the phone records (``mixture``) and its parts, each as long as the input."""

    mixture: Signal
    speech_dry: Signal  # the talkers' tracks summed, before the room
    speech_wet: Signal  # the same through the room, at the mixture's scale
    noise: Signal  # babble + clatter through the room, at the mixture's scale
    rirs: tuple[Signal, ...]  # one per talker, then babble, then clatter sources
    rt60_measured_s: float  # median over the talkers' impulse responses (Schroeder)


def random_room(rng: np.random.Generator, talkers: int) -> Room:
    """A cafe-sized room (5-12 x 4-9 x 2.7-3.6 m, RT60 0.3-0.9 s), the phone on a table at
    least 1.5 m from the walls, talkers seated 0.5-2 m from it (mouths 1.1-1.3 m high),
    babble from at least 2.5 m away where the room allows, clatter on nearby tables."""
    dims = (rng.uniform(5, 12), rng.uniform(4, 9), rng.uniform(2.7, 3.6))
    mic = (rng.uniform(1.5, dims[0] - 1.5), rng.uniform(1.5, dims[1] - 1.5), TABLE_HEIGHT)
    first = rng.uniform(0, 2 * np.pi)
    seats = []
    for k in range(talkers):
        angle = first + 2 * np.pi * k / talkers + rng.uniform(-0.3, 0.3)
        height = rng.uniform(1.1, 1.3)
        distance = rng.uniform(0.5, 2.0)
        across = np.sqrt(max(distance**2 - (height - TABLE_HEIGHT) ** 2, 0.05**2))
        seats.append(_inside(dims, mic, angle, across, height))
    babble = tuple(_far_point(rng, dims, mic, 2.5) for _ in range(BABBLE_SOURCES))
    clatter = tuple(
        _inside(dims, mic, rng.uniform(0, 2 * np.pi), rng.uniform(1.0, 3.0), TABLE_HEIGHT)
        for _ in range(CLATTER_SOURCES)
    )
    return Room(
        dims=_rounded(dims),
        rt60_s=round(float(rng.uniform(0.3, 0.9)), 3),
        mic=_rounded(mic),
        talkers=tuple(seats),
        babble=babble,
        clatter=clatter,
        snr_db=round(float(rng.uniform(5, 20)), 2),
    )


def _inside(
    dims: tuple[float, float, float],
    mic: tuple[float, float, float],
    angle: float,
    across: float,
    height: float,
) -> tuple[float, float, float]:
    """The point ``across`` metres from the mic at ``angle``, pulled in to stay 0.3 m
    from the walls."""
    x = float(np.clip(mic[0] + across * np.cos(angle), 0.3, dims[0] - 0.3))
    y = float(np.clip(mic[1] + across * np.sin(angle), 0.3, dims[1] - 0.3))
    return _rounded((x, y, height))


def _far_point(
    rng: np.random.Generator,
    dims: tuple[float, float, float],
    mic: tuple[float, float, float],
    at_least: float,
) -> tuple[float, float, float]:
    """A random standing-height point at least ``at_least`` m from the mic (the farthest
    of 20 draws when the room is too small for that)."""
    draws = [
        (rng.uniform(0.3, dims[0] - 0.3), rng.uniform(0.3, dims[1] - 0.3), rng.uniform(1.2, 1.6))
        for _ in range(20)
    ]
    far = [p for p in draws if np.linalg.norm(np.subtract(p, mic)) >= at_least]
    best = far[0] if far else max(draws, key=lambda p: float(np.linalg.norm(np.subtract(p, mic))))
    return _rounded(best)


def _rounded(point: tuple[float, ...]) -> tuple[float, float, float]:
    x, y, z = (round(float(v), 3) for v in point)
    return (x, y, z)


def impulse_responses(room: Room) -> tuple[list[Signal], float]:
    """One room impulse response from each source (talkers, babble, clatter) to the phone,
    and the median RT60 (Schroeder) of the talkers' responses. The image method's decay is
    slower than Sabine's formula says in these rooms, so the absorption is set once from
    the target, measured on the first talker's response, and set again from the error."""
    design = room.rt60_s
    first = _shoebox(room, design, room.talkers[:1])
    measured = _rt60(first[0])
    if measured > 0:
        design = float(np.clip(design * room.rt60_s / measured, 0.15, 2.0))
    sources = (*room.talkers, *room.babble, *room.clatter)
    rirs = _shoebox(room, design, sources)
    rt60 = float(np.median([_rt60(r) for r in rirs[: len(room.talkers)]]))
    return rirs, round(rt60, 3)


def _shoebox(
    room: Room, rt60_s: float, sources: tuple[tuple[float, float, float], ...]
) -> list[Signal]:
    import pyroomacoustics as pra

    try:
        absorption, order = pra.inverse_sabine(rt60_s, room.dims)
    except ValueError:  # too short a decay for the room: as absorbent as walls get
        absorption, order = 0.99, 2
    shoebox = pra.ShoeBox(
        room.dims,
        fs=SAMPLE_RATE,
        materials=pra.Material(min(absorption, 0.99)),
        max_order=min(order, MAX_ORDER),
    )
    for position in sources:
        shoebox.add_source(list(position))
    shoebox.add_microphone(list(room.mic))
    shoebox.compute_rir()
    return [np.asarray(r, dtype=np.float32) for r in shoebox.rir[0]]


def _rt60(rir: Signal) -> float:
    from pyroomacoustics.experimental import measure_rt60

    return float(measure_rt60(rir, fs=SAMPLE_RATE, decay_db=30))


def render(
    room: Room,
    talker_tracks: list[Signal],
    babble_tracks: list[Signal],
    rng: np.random.Generator,
) -> Rendered:
    """Each dry track through its source's impulse response, clatter synthesised and
    placed, noise scaled to ``room.snr_db`` against the speech where it is active, a
    phone-like high-pass, self-noise, and the whole set to ``TARGET_DBFS``."""
    from scipy.signal import butter, oaconvolve, sosfilt

    length = len(talker_tracks[0])
    rirs, rt60 = impulse_responses(room)
    talkers_n, babble_n = len(room.talkers), len(room.babble)

    def through(track: Signal, rir: Signal) -> Signal:
        return np.asarray(oaconvolve(track, rir)[:length], dtype=np.float32)

    dry = np.sum(talker_tracks, axis=0).astype(np.float32)
    babble_rirs = rirs[talkers_n : talkers_n + babble_n]
    wet = np.sum([through(t, r) for t, r in zip(talker_tracks, rirs, strict=False)], axis=0)
    babble = np.sum([through(t, r) for t, r in zip(babble_tracks, babble_rirs, strict=True)], 0)
    clatter = np.sum(
        [through(clatter_track(rng, length), r) for r in rirs[talkers_n + babble_n :]], axis=0
    )
    speech_power = _active_power(wet)
    noise_power = speech_power / 10 ** (room.snr_db / 10)
    noise = _scaled(babble, noise_power * (1 - CLATTER_SHARE)) + _scaled(
        clatter, noise_power * CLATTER_SHARE
    )
    highpass = butter(2, 120, btype="highpass", fs=SAMPLE_RATE, output="sos")
    phone = np.asarray(sosfilt(highpass, wet + noise), dtype=np.float64)
    gain = 10 ** (TARGET_DBFS / 20) / np.sqrt(np.mean(phone**2) + 1e-12)
    gain = min(gain, 0.99 / (np.max(np.abs(phone)) + 1e-12))
    hiss = rng.standard_normal(length) * 10 ** (SELF_NOISE_DBFS / 20)
    return Rendered(
        mixture=(phone * gain + hiss).astype(np.float32),
        speech_dry=dry,
        speech_wet=(wet * gain).astype(np.float32),
        noise=(noise * gain).astype(np.float32),
        rirs=tuple(rirs),
        rt60_measured_s=rt60,
    )


def clatter_track(rng: np.random.Generator, length: int, per_second: float = 0.4) -> Signal:
    """Cutlery and crockery: at Poisson times, a 2-10 ms noise burst plus one to three
    damped tones (1.5-6 kHz, 10-80 ms decay), peaks spread over 12 dB."""
    track = np.zeros(length, dtype=np.float32)
    events = rng.poisson(per_second * length / SAMPLE_RATE)
    t = np.arange(int(0.4 * SAMPLE_RATE)) / SAMPLE_RATE
    for start in rng.integers(0, max(length - len(t), 1), size=events):
        burst = int(rng.uniform(0.002, 0.010) * SAMPLE_RATE)
        hit = np.zeros(len(t))
        hit[:burst] = rng.standard_normal(burst)
        for _ in range(rng.integers(1, 4)):
            hit += np.sin(2 * np.pi * rng.uniform(1500, 6000) * t + rng.uniform(0, 2 * np.pi)) * (
                np.exp(-t / rng.uniform(0.010, 0.080))
            )
        hit *= 10 ** (rng.uniform(-12, 0) / 20) / (np.max(np.abs(hit)) + 1e-12)
        track[start : start + len(t)] += hit.astype(np.float32)[: length - start]
    return track


def _active_power(signal: npt.NDArray[np.floating], frame: int = 320) -> float:
    """Mean power over the 20 ms frames within 30 dB of the loudest ones (speech, not the
    silences between turns)."""
    n = len(signal) // frame
    power = np.mean(np.asarray(signal[: n * frame], dtype=np.float64).reshape(n, frame) ** 2, 1)
    loud = power[power > np.percentile(power, 95) * 10**-3]
    return float(np.mean(loud)) if loud.size else float(np.mean(power))


def _scaled(signal: npt.NDArray[np.floating], power: float) -> npt.NDArray[np.float64]:
    samples = np.asarray(signal, dtype=np.float64)
    have = float(np.mean(samples**2))
    return samples * np.sqrt(power / have) if have > 0 else samples
