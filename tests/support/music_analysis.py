"""Independent tempo and key estimators that tests use to check rendered music against labels.

Deliberately separate from the corpus code (``trainer.corpus``): it reads only the audio, with
textbook methods in plain numpy, so a test that compares its estimates with a track's labels
checks the rendering, not the composer against itself.

- Tempo: spectral-flux onset envelopes in six frequency bands -> their mean autocorrelation
  -> a harmonic comb over lags (the beat period explains its multiples; a sub-beat or a 3:2
  period does not) -> a check that the winner is not the bar of a waltz -> parabolic
  refinement of the peaks. Octave errors (half or double) remain possible.
- Key: a whole-signal chroma vector correlated with the 24 rotations of the Albrecht-Shanahan
  key profiles (the Krumhansl-Schmuckler method).
- Scoring: the MIREX weighted key score (as in ``mir_eval.key``) and a tempo tolerance check
  that may accept octave errors.
"""

from __future__ import annotations

import itertools

import numpy as np

PITCH_CLASSES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")
_FLATS = {"Db": "C#", "Eb": "D#", "Fb": "E", "Gb": "F#", "Ab": "G#", "Bb": "A#", "Cb": "B"}
MODES = ("major", "minor")

# Albrecht & Shanahan (2013) key profiles, tonic first: pitch-class shares in a corpus of
# common-practice pieces. They separate diatonic from chromatic degrees (and the leading
# tone of minor from the subtonic) more sharply than Krumhansl-Kessler, so the dominant,
# whose overtones load the chroma, loses to the tonic more often. On 550 synthetic songs
# they named 99-100 % of the keys exactly; Temperley's Kostka-Payne profiles 97-98 %,
# Krumhansl-Kessler 88-91 %.
_MAJOR_PROFILE = np.array(
    [0.238, 0.006, 0.111, 0.006, 0.137, 0.094, 0.016, 0.214, 0.009, 0.080, 0.008, 0.081]
)
_MINOR_PROFILE = np.array(
    [0.220, 0.006, 0.104, 0.123, 0.019, 0.103, 0.012, 0.214, 0.062, 0.022, 0.061, 0.052]
)

_ONSET_FFT = 1024  # 46 ms at 22.05 kHz: short enough to keep drum hits sharp in time
_CHROMA_FFT = 8192  # 2.7 Hz bins at 22.05 kHz: under a semitone (3.6 Hz) even near 60 Hz
_CHROMA_HOP = 2048  # 93 ms: a key needs no finer time resolution
_CHROMA_LOW_HZ, _CHROMA_HIGH_HZ = 60.0, 2000.0  # bass to the top of most melodies
_CHROMA_SIGMA_SEMITONES = 1.0 / 6.0
_TEMPO_HOP = 128  # 5.8 ms frames at 22.05 kHz: 1.5 % period resolution even at 180 BPM
# Bands (Hz) that roughly separate kick, bass, snare body, chords, snare and claps, cymbals.
_TEMPO_BAND_EDGES_HZ = (0.0, 150.0, 400.0, 1000.0, 2500.0, 6000.0, np.inf)
_HARMONICS = (1, 2, 3, 4)  # the comb looks at lags L, 2L, 3L, 4L
# A winning period slower than this (BPM) whose thirds score at least this share of it is
# taken for a bar of three beats. On synthetic songs waltz bars scored 0.58-0.83 and swung
# beats up to 0.54 (at 0.55 slow shuffles came out at triple tempo).
_TRIPLE_BAR_MAX_BPM = 75.0
_TRIPLE_BAR_RATIO = 0.65


def _frames(y: np.ndarray, n_fft: int, hop: int) -> np.ndarray:
    """Hann-windowed frames of ``y``, shape (n_frames, n_fft); short signals are zero-padded.

    Raises:
        ValueError: ``y`` is not one-dimensional (mono).
    """
    y = np.asarray(y, dtype=np.float64)
    if y.ndim != 1:
        raise ValueError(f"expected a mono waveform (1-D), got shape {y.shape}")
    if len(y) < n_fft:
        y = np.pad(y, (0, n_fft - len(y)))
    n_frames = 1 + (len(y) - n_fft) // hop
    strides = (y.strides[0] * hop, y.strides[0])
    frames = np.lib.stride_tricks.as_strided(y, shape=(n_frames, n_fft), strides=strides)
    return frames * np.hanning(n_fft)


def _magnitude(y: np.ndarray, n_fft: int, hop: int) -> np.ndarray:
    """STFT magnitudes, shape (n_frames, n_fft // 2 + 1)."""
    return np.abs(np.fft.rfft(_frames(y, n_fft, hop), axis=1))


def _flux(y: np.ndarray, sr: int, hop: int) -> tuple[np.ndarray, np.ndarray]:
    """Half-wave rectified log-magnitude difference per STFT bin.

    Frames are centred (the signal is zero-padded by half a window at both ends), so that
    row i describes the signal around i * hop samples.

    Returns:
        Flux, shape (n_frames, n_bins), 0 in the first row, and the centre frequency of each
        bin in Hz.
    """
    padded = np.pad(np.asarray(y, dtype=np.float64), _ONSET_FFT // 2)
    mag = _magnitude(padded, _ONSET_FFT, hop)
    # log(1 + 10 x) of the magnitude relative to the loudest bin: level-invariant, and
    # compressed enough that a soft hi-hat still counts but not so much that it weighs as
    # much as a kick or a chord (the accents are what tells the beat from a syncopation).
    log_mag = np.log1p(10.0 * mag / max(float(mag.max()), 1e-12))
    # Only energy *increases* mark onsets.
    flux = np.maximum(np.diff(log_mag, axis=0, prepend=log_mag[:1]), 0.0)
    return flux, np.fft.rfftfreq(_ONSET_FFT, 1.0 / sr)


def onset_envelope(y: np.ndarray, sr: int, hop: int = 256) -> tuple[np.ndarray, float]:
    """Spectral-flux onset strength of a mono signal.

    Args:
        y: Mono waveform, any scale (the magnitudes are taken relative to their maximum).
        sr: Sample rate in Hz.
        hop: Hop between STFT frames in samples.

    Returns:
        The envelope, shape (1 + len(y) // hop,), where value i is the onset strength around
        i * hop / sr seconds, and its frame rate in Hz (``sr / hop``).
    """
    flux, _ = _flux(y, sr, hop)
    return flux.sum(axis=1), sr / hop


def _moving_average(x: np.ndarray, width: int) -> np.ndarray:
    """Centred moving average of ``x`` over ``width`` samples (edges use the available part)."""
    kernel = np.ones(width)
    total = np.convolve(x, kernel, mode="same")
    count = np.convolve(np.ones_like(x), kernel, mode="same")
    return total / count


def _autocorrelation(x: np.ndarray, max_lag: int) -> np.ndarray:
    """Unbiased autocorrelation of ``x`` for lags 0..max_lag, normalised to 1 at lag 0.

    Unbiased (each lag divided by its overlap) so that the comb does not favour short lags
    just because they overlap more frames.
    """
    n = len(x)
    size = 1 << int(np.ceil(np.log2(2 * n)))  # zero-padded: a linear, not circular, ACF
    spectrum = np.fft.rfft(x, size)
    acf = np.fft.irfft(spectrum * np.conj(spectrum), size)[: max_lag + 1]
    acf = acf / (n - np.arange(max_lag + 1))
    return acf / max(acf[0], 1e-12)


def _periodicity(y: np.ndarray, sr: int, max_lag: int) -> np.ndarray:
    """Mean over frequency bands of the autocorrelation of each band's onset envelope.

    One envelope summed over all bins is dominated by the hi-hats (most STFT bins lie above
    2 kHz) and shows little but the 16th-note grid, on which a syncopated kick pattern makes
    the dotted 8th look as periodic as the beat. Per band, kick, bass, snare, chords and
    cymbals each get an equal vote on which periods recur.

    Returns:
        Autocorrelation for lags 0..max_lag frames of ``_TEMPO_HOP`` samples (fewer for a
        short signal), clipped at 0: only positive correlation is evidence of periodicity.

    Raises:
        ValueError: No band has any onsets (a silent or constant signal).
    """
    flux, freqs = _flux(y, sr, _TEMPO_HOP)
    rate = sr / _TEMPO_HOP  # envelope frames per second
    max_lag = max(1, min(max_lag, flux.shape[0] - 1))
    acfs = []
    for low, high in itertools.pairwise(_TEMPO_BAND_EDGES_HZ):
        envelope = flux[:, (freqs >= low) & (freqs < high)].sum(axis=1)
        # Detrend: subtract a ~1 s moving average so that slow loudness changes (sections,
        # fades) do not add a broad hump to the autocorrelation; then unit variance.
        envelope = envelope - _moving_average(envelope, max(3, round(rate)))
        if envelope.std() > 1e-9:
            acfs.append(_autocorrelation(envelope / envelope.std(), max_lag))
    if not acfs:
        raise ValueError("no onsets: the signal is silent or constant")
    return np.maximum(np.mean(acfs, axis=0), 0.0)


def _comb(acf: np.ndarray, lags: np.ndarray) -> np.ndarray:
    """Mean autocorrelation at the multiples ``_HARMONICS`` (L, 2L, ...) of each lag L.

    Lags are fractional frames (linear interpolation); beyond the computed range counts 0.
    """
    positions = np.arange(len(acf))
    multiples = [np.interp(k * lags, positions, acf, right=0.0) for k in _HARMONICS]
    return np.mean(multiples, axis=0)


def _parabolic_peak(x: np.ndarray, index: int) -> float:
    """Sub-sample position of the peak of ``x`` at ``index`` (a local maximum).

    Fits a parabola through the three samples around it; the vertex is the estimate, at
    most half a sample away.
    """
    if index <= 0 or index >= len(x) - 1:
        return float(index)
    left, centre, right = x[index - 1], x[index], x[index + 1]
    curvature = left - 2 * centre + right
    if curvature >= 0:  # flat or not a maximum: no better guess than the sample itself
        return float(index)
    return index + 0.5 * (left - right) / curvature


def _refine_period(acf: np.ndarray, lag: float) -> float:
    """The beat period near ``lag`` to a fraction of a frame, from the peaks at its multiples.

    The peak near k x lag, located by a parabola to a fraction of a frame, gives the period
    to that fraction / k (1 frame is 1.5 % of the period at 180 BPM with a 5.8 ms hop); each
    multiple votes with its height.
    """
    periods, weights = [], []
    for k in _HARMONICS:
        centre = round(k * lag)
        # ``lag`` is a whole frame, up to half a frame off, so the peak near k x lag may be
        # k / 2 frames away; the window stays well inside the gap to a 16th-note neighbour.
        radius = k + 1
        low, high = max(1, centre - radius), min(len(acf) - 2, centre + radius)
        if high < low:
            break
        index = low + int(np.argmax(acf[low : high + 1]))
        if acf[index] > 0:
            periods.append(_parabolic_peak(acf, index) / k)
            weights.append(acf[index])
    return float(np.average(periods, weights=weights)) if periods else lag


def estimate_tempo(y: np.ndarray, sr: int, min_bpm: float = 50.0, max_bpm: float = 220.0) -> float:
    """Tempo of a mono signal from the autocorrelation of its onset envelope.

    Args:
        y: Mono waveform.
        sr: Sample rate in Hz.
        min_bpm: Slowest tempo considered, in beats per minute.
        max_bpm: Fastest tempo considered, in beats per minute.

    Returns:
        The tempo in BPM. The beat may come out at half or double the notated tempo
        (octave errors); other ratios are what the harmonic comb is there to prevent.

    Raises:
        ValueError: The signal has no onsets, or the tempo range is empty.
    """
    if not 0 < min_bpm < max_bpm:
        raise ValueError(f"need 0 < min_bpm < max_bpm, got {min_bpm} and {max_bpm}")
    rate = sr / _TEMPO_HOP  # envelope frames per second
    min_lag = rate * 60.0 / max_bpm  # frames per beat at the fastest tempo
    max_lag = rate * 60.0 / min_bpm
    acf = _periodicity(y, sr, int(_HARMONICS[-1] * max_lag) + 2)
    lags = np.arange(max(1, int(np.floor(min_lag))), int(np.ceil(max_lag)) + 1).astype(float)
    # Harmonic comb: a beat period L explains the peaks at L, 2L, 3L, 4L; a sub-beat or
    # dotted period (L/2, 2L/3, 3L/2) lands between beats at some multiples and loses there.
    best = float(lags[int(np.argmax(_comb(acf, lags)))])
    # In a waltz the bar can outscore its beat (only beat 1 is accented). A bar's thirds
    # recur almost as strongly as the bar itself, as every beat is an onset; the thirds of a
    # swung beat recur less (its off-beat 8th sits on only one of the two triplet positions)
    # and those of a duple beat hardly at all. Only slow periods can be bars here.
    if best / 3 >= min_lag and 60.0 * rate / best <= _TRIPLE_BAR_MAX_BPM:
        bar, beat = _comb(acf, np.array([best, best / 3]))
        if beat >= _TRIPLE_BAR_RATIO * bar:
            best /= 3
    return 60.0 * rate / _refine_period(acf, best)


def chroma(y: np.ndarray, sr: int) -> np.ndarray:
    """12-bin pitch-class profile of a whole mono signal.

    Each STFT bin between 60 Hz and 2 kHz adds its energy to the pitch class of the nearest
    equal-tempered semitone (A4 = 440 Hz), weighted by how close it lies to that semitone, so
    that energy between semitones (noise, drums, the skirts of the window) counts little.

    Args:
        y: Mono waveform.
        sr: Sample rate in Hz.

    Returns:
        Shape (12,), C at index 0, summing to 1 (all zeros for a silent signal).

    Raises:
        ValueError: ``y`` is not mono (1-D).
    """
    mag = _magnitude(y, _CHROMA_FFT, _CHROMA_HOP)
    freqs = np.fft.rfftfreq(_CHROMA_FFT, 1.0 / sr)
    band = (freqs >= _CHROMA_LOW_HZ) & (freqs <= _CHROMA_HIGH_HZ)
    midi = 69.0 + 12.0 * np.log2(freqs[band] / 440.0)  # fractional MIDI note of each bin
    nearest = np.round(midi)
    # Gaussian in log frequency (sigma = 1/6 semitone): a bin on the note counts fully, one a
    # quarter-tone away about 10 %.
    weight = np.exp(-0.5 * ((midi - nearest) / _CHROMA_SIGMA_SEMITONES) ** 2)
    pitch_class = nearest.astype(int) % 12
    # Energy (squared magnitude) rather than magnitude: stresses the partials of held notes
    # over broadband drum noise (on 550 synthetic songs: 99.8 % of keys exactly right, against
    # 99.1 % with magnitudes).
    frames = mag[:, band] ** 2 * weight  # (n_frames, n_bins)
    per_frame = np.stack([frames[:, pitch_class == pc].sum(axis=1) for pc in range(12)], 1)
    # Every frame gets the same say, so that loud passages (a crash, a tutti) do not outvote
    # the rest of the song.
    norms = per_frame.sum(axis=1, keepdims=True)
    per_frame = np.divide(per_frame, norms, out=np.zeros_like(per_frame), where=norms > 1e-12)
    profile = per_frame.sum(axis=0)
    total = profile.sum()
    return profile / total if total > 0 else profile


def _key_correlations(profile: np.ndarray) -> np.ndarray:
    """Pearson correlation of a chroma with every key, shape (2, 12): [mode, tonic]."""
    result = np.zeros((2, 12))
    centred = profile - profile.mean()
    for m, template in enumerate((_MAJOR_PROFILE, _MINOR_PROFILE)):
        for tonic in range(12):
            # Rotating the tonic-first profile right by ``tonic`` puts its tonic weight at
            # pitch class ``tonic``.
            key = np.roll(template, tonic)
            key = key - key.mean()
            denominator = np.linalg.norm(centred) * np.linalg.norm(key)
            result[m, tonic] = centred @ key / denominator if denominator > 0 else 0.0
    return result


def estimate_key(y: np.ndarray, sr: int) -> tuple[str, str]:
    """Key of a mono signal by key-profile correlation (Krumhansl-Schmuckler method).

    Args:
        y: Mono waveform.
        sr: Sample rate in Hz.

    Returns:
        (tonic, mode): tonic one of ``PITCH_CLASSES`` (sharps), mode ``"major"`` or
        ``"minor"``.

    Raises:
        ValueError: The signal has no energy between 60 Hz and 2 kHz.
    """
    profile = chroma(y, sr)
    if not profile.any():
        raise ValueError("no pitched energy between 60 Hz and 2 kHz: the signal is silent")
    scores = _key_correlations(profile)
    mode, tonic = np.unravel_index(int(np.argmax(scores)), scores.shape)
    return PITCH_CLASSES[int(tonic)], MODES[int(mode)]


def _parse_key(key: tuple[str, str]) -> tuple[int, str]:
    """(tonic name, mode) -> (pitch class 0..11, mode); flats are mapped to sharps."""
    tonic, mode = key
    name = tonic.strip().capitalize()  # "bb" -> "Bb", "f#" -> "F#"
    name = _FLATS.get(name, name)
    if name not in PITCH_CLASSES:
        raise ValueError(f"unknown tonic {tonic!r}; expected one of {PITCH_CLASSES} or a flat")
    if mode.strip().lower() not in MODES:
        raise ValueError(f"unknown mode {mode!r}; expected 'major' or 'minor'")
    return PITCH_CLASSES.index(name), mode.strip().lower()


def mirex_key_score(estimated: tuple[str, str], reference: tuple[str, str]) -> float:
    """MIREX weighted key score, as ``mir_eval.key.weighted_score``.

    Args:
        estimated: (tonic, mode) of the estimate; tonic with sharps or flats.
        reference: (tonic, mode) of the ground truth.

    Returns:
        1.0 same key; 0.5 estimate a perfect fifth above the reference, same mode; 0.3
        relative major/minor; 0.2 parallel (same tonic, other mode); else 0.0.

    Raises:
        ValueError: A tonic or mode is not recognised.
    """
    est_tonic, est_mode = _parse_key(estimated)
    ref_tonic, ref_mode = _parse_key(reference)
    interval = (est_tonic - ref_tonic) % 12  # semitones from the reference tonic up
    if est_mode == ref_mode:
        if interval == 0:
            return 1.0
        return 0.5 if interval == 7 else 0.0
    if interval == 0:
        return 0.2
    # Relative keys: C major <-> A minor (A is 9 above C; C is 3 above A).
    if ref_mode == "major" and interval == 9:
        return 0.3
    if ref_mode == "minor" and interval == 3:
        return 0.3
    return 0.0


def tempo_matches(
    estimated: float, reference: float, tolerance: float = 0.04, allow_octave: bool = True
) -> bool:
    """Whether a tempo estimate agrees with a reference tempo.

    Args:
        estimated: Estimated tempo in BPM.
        reference: True tempo in BPM.
        tolerance: Allowed relative error (0.04 = within 4 % of the target).
        allow_octave: Also accept half and double the reference (the beat tracked at another
            metrical level).

    Returns:
        True when ``estimated`` is within ``tolerance`` of the reference (or, when allowed, of
        2x or 0.5x it).
    """
    targets = (reference, 2.0 * reference, 0.5 * reference) if allow_octave else (reference,)
    return any(abs(estimated - target) <= tolerance * target for target in targets)
