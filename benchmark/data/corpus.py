"""The built-in corpus: a small, deterministic stand-in for the original album.

The original experiment trained on a hip-hop album (speech, drums, synthetic
instruments).  This module rebuilds a comparable mix from *real recordings*
that Debian packages ship, so that every machine with the same packages gets a
byte-identical corpus without downloading anything at run time.

Categories and their share of the requested minutes (see ``SHARES``):

* ``speech`` (35 %): Czech studio voice acting from ``fillets-ng-data-cs``
  (several speakers, 22 kHz), LibriVox reading from ``pocketsphinx-testdata``,
  ``speech_orig_16k.wav`` from ``codec2-examples``, and Harvard sentences
  spoken by ``flite`` voices.  The synthetic part is budgeted at
  ``SYNTHETIC_SHARE`` (15 %) of the speech seconds, never more than 20 %, and is
  flagged ``"synthetic": true`` in the manifest.
* ``drums`` (20 %): CC0 loops from ``sonic-pi-samples`` tiled to a few bars, and
  beats sequenced here (numpy, fixed seeds) from recorded one-shots of the
  GMRockKit (``hydrogen-data``) and of ``sonic-pi-samples``.
* ``music`` (25 %): excerpts of the Frets on Fire songs (backing track plus
  guitar track, ogg) and MIDI files of the OpenTTD OpenMSX music set rendered
  with ``fluidsynth`` and the TimGM6mb General MIDI sound font.
* ``mix`` (20 %): sequenced beats with speech lines on top, like the album.

Every clip is mono 16-bit PCM WAV at ``sample_rate``, a few seconds to 20 s
long, loudness-normalised (RMS -20 dBFS) under a -1 dBFS peak ceiling.
``manifest.json`` lists every clip with its sources, licence and sha256.

Sources are named file by file below (no folder globbing), so the build only
depends on the package versions, which the manifest records.

Command line::

    python -m earshot.benchmark.data.corpus --print-packages      # for apt-get install
    python -m earshot.benchmark.data.corpus [--minutes 10] [--sample-rate 11025] [--out DIR]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import soundfile as sf
import soxr

from earshot.benchmark.data.audio import CATEGORIES as ALL_CATEGORIES, OTHER
from earshot.results.rundir import pcm16

__all__ = [
    "CORPUS_VERSION",
    "CATEGORIES",
    "SHARES",
    "SYNTHETIC_SHARE",
    "REQUIRED_DEBIAN_PACKAGES",
    "PACKAGE_LICENCES",
    "CorpusError",
    "missing_packages",
    "build_corpus",
    "default_corpus_dir",
    "ensure_corpus",
]

# Bump whenever a recipe changes what gets written: it is part of the cache key.
# 2: samples scaled by 2^15 (earshot's one 16-bit PCM scaling), not 2^15 - 1.
CORPUS_VERSION = 2

# Every category of material but "other", the category of a user's unsorted files.
CATEGORIES = tuple(c for c in ALL_CATEGORIES if c != OTHER)
SHARES = {"speech": 0.35, "drums": 0.20, "music": 0.25, "mix": 0.20}
# Synthetic (TTS) part of the speech seconds; the hard limit is 20 %.
SYNTHETIC_SHARE = 0.15
SYNTHETIC_MAX_SHARE = 0.20

MIN_CLIP_SECONDS = 2.0
TARGET_RMS_DBFS = -20.0
PEAK_CEILING = 10.0 ** (-1.0 / 20.0)  # -1 dBFS
FLUIDSYNTH_RATE = 22050

REQUIRED_DEBIAN_PACKAGES: list[str] = [
    "fillets-ng-data-cs",
    "pocketsphinx-testdata",
    "codec2-examples",
    "flite",
    "sonic-pi-samples",
    "hydrogen-data",
    "fretsonfire-songs-muldjord",
    "fretsonfire-songs-sectoid",
    "openttd-openmsx",
    "fluidsynth",
    "timgm6mb-soundfont",
]

# Read from /usr/share/doc/<pkg>/copyright (Debian bookworm versions).
PACKAGE_LICENCES: dict[str, str] = {
    "fillets-ng-data-cs": "GPL-2",
    "pocketsphinx-testdata": "BSD-2-Clause",  # LibriVox recordings, Files: * BSD-2
    "codec2-examples": "LGPL-2.1",
    "flite": "Flite-BSD-like (CMU/Edinburgh voice licence)",
    "sonic-pi-samples": "CC0-1.0",  # every etc/samples/*.flac is CC0
    "hydrogen-data": "GPL-2+",
    "fretsonfire-songs-muldjord": "CC-BY-SA-3.0",
    "fretsonfire-songs-sectoid": "MIT",
    "openttd-openmsx": "GPL-2",
    "timgm6mb-soundfont": "GPL-2",
    "fluidsynth": "LGPL-2.1+",
}

INSTALL_HINT = "sudo apt-get install -y --no-install-recommends"


class CorpusError(RuntimeError):
    """The built-in corpus cannot be built (missing packages, bad arguments...)."""


# --------------------------------------------------------------------------
# Sources, named file by file
# --------------------------------------------------------------------------

_FILLETS_ROOT = "/usr/share/games/fillets-ng/sound"

# Voice lines of "Fish Fillets NG" (Czech).  level folder -> line names; the
# speakers alternate (m = small fish, v = big fish, others = level characters).
_FILLETS_SPEECH = {
    "airplane": "let-v-budrada let-m-divna let-v-vrak0 let-m-oko",
    "alibaba": "kni-m-amfornictvi kni-v-amforstvi kni-m-cetky kni-v-ber",
    "aztec": "bot-v-lebka bot-m-ble bot-v-podivat bot-m-padaji",
    "barrel": "bar-m-barel bar-v-co bar-x-vypr bar-m-dost0",
    "bathyscaph": "bat-s-prome0 bat-p-0 bat-v-klid bat-m-mikro",
    "briefcase": "help11 kuf-v-doprace kuf-m-disk help12",
    "cabin1": "k1-pap-3xkruty k1-m-chobotnice k1-v-cit k1-pap-drahokamy",
    "cabin2": "ka2-v-fik ka2-m-chapadlo ka2-v-hrbet",
    "cannons": "del-m-jedn0 del-v-mec del-m-jedn1 del-v-splet",
    "captain": "vl-v-kaj1 vl-m-hara vl-leb-kecy0 vl-x-site",
    "cellar": "pra-m-chytit pra-v-dobrynapad pra-m-jakudelat pra-v-dopredu",
    "chest": "tru-v-gral tru-m-co tru-v-nasly tru-m-nejistota",
    "columns": "sl-v-barbarka sl-m-nelibila sl-v-feidios sl-m-sedi",
    "computer": "poc-m-kram poc-v-dira poc-m-lezt0 poc-v-kam0",
    "corridor": "ch-m-blik0 ch-v-halo0 ch-r-anavic0 ch-m-blik1",
    "crabshow": "sec-v-ktery sec-m-balonky sec-v-mesto sec-m-dole0",
    "duckie": "odp-v-coja odp-m-blaznis odp-v-kachna odp-m-kohout",
    "dump": "sm-v-budik sm-m-codela sm-x-meduza sm-v-charon",
    "elevator2": "zd2-x-fuj zd2-m-dalsi zd2-v-haml zd2-x-hus0",
    "elk": "deu-m-bojovat deu-v-nepratelstvi deu-m-valka deu-v-radsi",
    "ending": "z-c-16 z-m-dlouho z-v-doma z-o-blahoprejeme",
    "engine": "mot-v-funkce0 mot-m-akce0 mot-v-funkce1 mot-m-akce1",
    "fdto": "agenti-m budova-m cely-m drzel-m",
    "floppy": "disk-m-depres disk-v-kriz disk-x-jejda0 disk-m-nahrat",
    "gods": "b1-1 lod-m-bohove lod-v-hrac b1-10",
    "grail": "gr-m-gral gr-v-jiste gr-m-jensvaty gr-v-nic0",
    "hardware": "pz-m-co pz-v-co1 pz-m-nech pz-v-co2",
    "hole": "l-dejte0 l-dejte1 l-dejte2 l-dejte3",
    "keys": "init-0-0 rand-4-0 rand-3-0 rand-1-0",
    "kitchen": "kuch-m-hrnec0 kuch-v-ja kuch-m-hrnec1 kuch-v-kreslo0",
    "library": "vrak-m-cteni0 vrak-v-knihy0 vrak-m-cteni1 vrak-v-knihy1",
    "linux": "1-archlinux 1-balickovaci 1-dohnat 1-jazyka",
    "map": "map-m-mapa map-v-cojetam map-x-hlemyzdi map-m-neplacej",
    "music": "ves-v-pokoj ves-m-dik ves-hs-hrajeme ves-v-stejne",
    "nowall": "m-otazka0 m-otazka1 m-otazka2 m-otazka3",
    "party1": "pt1-m-kostlivec pt1-v-pozor pt1-m-nemuzu pt1-v-predtucha",
    "pavement": "dir-hs-konec0 dir-m-rada0 dir-v-rada0 dir-hs-konec1",
    "pearls": "jed-m-flakas jed-v-ocet jed-x-nedam jed-m-kulicka",
    "puzzle": "puc-m-hele puc-v-fuska0 puc-m-koukej puc-v-fuska1",
    "pyramid": "pyr-m-comy pyr-v-druha pyr-m-dest pyr-v-sark",
    "reef": "uts-m-batyskaf uts-v-konecne uts-m-chudak uts-v-koraly",
    "rush": "m-myslis m-obdivovat m-silou m-vysunout",
    "share/border": "sp-shout_big_00 cil-m-hlaska0 cil-v-hlaska0 sp-shout_big_01",
    "share/borejokes": "ob-m-ach ob-v-akvarium ob-o-halo ob-m-ceka",
    "society": "mik-m-konik mik-v-projet mik-m-krab mik-v-proto",
    "stairs": "sch-m-moc0 sch-v-lastura sch-m-moc1 sch-m-moc2",
    "steel": "steel-m-0 steel-m-1",
    "submarine": "zr-m-komu zr-v-halo zr-x-nabito zr-m-nepovykuj",
    "tetris": "tet-m-ano tet-v-hybat tet-m-jaklepsi tet-v-kostky",
    "turtle": "zel-v-bizarni zel-m-cimtoje zel-v-cosedeje zel-m-coto0",
    "viking1": "d1-1-hudba0 d1-2-brb0 d1-3-brb0 d1-4-brb0",
    "viking2": "dr-3-chlap dr-4-budu dr-1-achjo dr-v-napsa",
    "wc": "wc-v-coze wc-m-hrbitov wc-v-hygiena wc-m-nevis",
    "windoze": "win-m-chodila win-v-citim win-m-costim0 win-v-hav",
}
# Disjoint set of lines, used only as the vocals of the "mix" category.
_FILLETS_MIX = {
    "atlantis": "sp-m-costim sp-v-centrala sp-m-nechat sp-v-co",
    "bathroom": "br-m-ahoj br-v-dost br-m-bavi br-v-draha",
    "broom": "kos-m-uklid0 kos-v-koste0 kos-m-uklid1 kos-v-koste1",
    "cancan": "kan-v-proc",
    "cave": "jes-v-gral jes-m-deprese jes-v-kamen jes-m-netopyr",
    "city": "vit-hs-jidelna2 vit-v-automat vit-m-hlava vit-hs-klid1",
    "corals": "re-v-koraly0 re-m-ahoj re-k-au re-v-koraly1",
    "creatures": "kor-m-avlada kor-v-avidelas kor-m-bizarni kor-v-jedovate",
    "elevator1": "zd1-m-cesta zd1-v-krecek zd1-x-huhu1 zd1-m-dolu",
    "emulator": "zx-m-highway zx-v-hry zx-m-jetpack zx-v-manicminer",
    "experiments": "bank-m-bojim bank-v-flaska bank-m-hlavakolem bank-v-jeste",
    "gems": "zav-v-restart zav-m-hopskok zav-v-sto zav-m-hrac",
    "hanoi": "m-bude m-citovat m-hazet m-inspiroval",
    "imprisoned": "ncp-m-barvy ncp-v-ceho ncp-m-komari ncp-v-dostala",
    "labyrinth": "bl-v-dost1 bl-m-koral0 bl-v-dost2 bl-m-snecku0",
    "magnet": "pap-m-coje pap-v-divny pap-m-jejedno pap-v-ha",
    "noground": "nog-v-smetiste0 nog-m-uvedom0 nog-v-smetiste1 nog-m-uvedom1",
    "party2": "pt2-m-hrac pt2-v-minule0 pt2-m-parnik pt2-v-minule1",
    "propulsion": "poh-m-dobre poh-v-automat poh-m-dobryden0 poh-v-klec",
    "reactor": "rea-v-acoby rea-m-anebo rea-v-coto rea-m-comyslis",
    "share/blackjokes": "smrt-m-0 smrt-v-0 smrt-x-obe smrt-m-1",
    "snowman": "tr-m-au1 tr-v-agres tr-m-au2 tr-v-jid1",
    "start": "1st-m-backspace 1st-v-davej 1st-m-cotobylo 1st-v-jedno",
    "tank": "sv-v-bezsneku sv-m-doscasu sv-v-chtel sv-m-munice",
    "ufo": "ufo-m-moc ufo-v-dovnitr ufo-m-ne ufo-v-hur",
    "warcraft": "war-m-aznato war-v-doly war-m-hodiny war-v-povedome",
    "wreck": "pot-v-cepic pot-m-dik pot-v-hlave pot-m-dovn",
}

_LIBRIVOX = "/usr/share/pocketsphinx/test/data/librivox/sense_and_sensibility_01_austen_64kb-{}.wav"
_LIBRIVOX_CLIPS = [["0870", "0880", "0890"], ["0920", "0930"]]
_CODEC2_SPEECH = ["/usr/share/codec2/raw/speech_orig_16k.wav"]

# IEEE 1969 "Harvard" sentences, lists 1-3 (public domain).
_HARVARD = [
    "The birch canoe slid on the smooth planks.",
    "Glue the sheet to the dark blue background.",
    "It's easy to tell the depth of a well.",
    "These days a chicken leg is a rare dish.",
    "Rice is often served in round bowls.",
    "The juice of lemons makes fine punch.",
    "The box was thrown beside the parked truck.",
    "The hogs were fed chopped corn and garbage.",
    "Four hours of steady work faced us.",
    "A large size in stockings is hard to sell.",
    "The boy was there when the sun rose.",
    "A rod is used to catch pink salmon.",
    "The source of the huge river is the clear spring.",
    "Kick the ball straight and follow through.",
    "Help the woman get back to her feet.",
    "A pot of tea helps to pass the evening.",
    "Smoky fires lack flame and heat.",
    "The soft cushion broke the man's fall.",
    "The salt breeze came across from the sea.",
    "The girl at the booth sold fifty bonds.",
    "The small pup gnawed a hole in the sock.",
    "The fish twisted and turned on the bent hook.",
    "Press the pants and sew a button on the vest.",
    "The swan dive was far short of perfect.",
    "The beauty of the view stunned the young boy.",
    "Two blue fish swam in the tank.",
    "Her purse was full of useless trash.",
    "The colt reared and threw the tall rider.",
    "It snowed, rained, and hailed the same morning.",
    "Read verse out loud for pleasure.",
]
_FLITE_VOICES = ["slt", "rms", "awb", "kal16"]
_FLITE_SENTENCES_PER_CLIP = 3

_SONIC_PI = "/usr/share/sonic-pi/samples/{}.flac"
# (loop name, clip length in seconds: the loop is tiled to about this long)
_DRUM_LOOPS = [
    ("loop_amen", 8.0),
    ("loop_breakbeat", 8.0),
    ("loop_compus", 13.0),
    ("loop_perc1", 10.0),
    ("loop_amen_full", 13.7),
    ("loop_safari", 16.0),
    ("loop_mehackit1", 10.0),
    ("loop_tabla", 10.7),
    ("loop_industrial", 7.0),
    ("loop_perc2", 10.0),
    ("loop_electric", 10.0),
    ("loop_mehackit2", 10.0),
]

_GMROCK = "/usr/share/hydrogen/data/drumkits/GMRockKit/{}.wav"

# instrument -> list of (minimum velocity, sample path); the loudest layer
# whose threshold the hit's velocity reaches is used.
_KITS: dict[str, dict] = {
    "gmrock": {
        "package": "hydrogen-data",
        "sounds": {
            "k": [(0.0, _GMROCK.format("Kick-Soft")), (0.55, _GMROCK.format("Kick-Med")),
                  (0.85, _GMROCK.format("Kick-Hard"))],
            "s": [(0.0, _GMROCK.format("Snare-Softest")), (0.3, _GMROCK.format("Snare-Soft")),
                  (0.55, _GMROCK.format("Snare-Med")), (0.85, _GMROCK.format("Snare-Hard"))],
            "h": [(0.0, _GMROCK.format("HatClosed-Soft")), (0.55, _GMROCK.format("HatClosed-Med")),
                  (0.85, _GMROCK.format("HatClosed-Hard"))],
            "o": [(0.0, _GMROCK.format("HatOpen-Med")), (0.85, _GMROCK.format("HatOpen-Hard"))],
            "c": [(0.0, _GMROCK.format("Crash-Med")), (0.85, _GMROCK.format("Crash-Hard"))],
            "p": [(0.0, _GMROCK.format("HandClap"))],
            "r": [(0.0, _GMROCK.format("SideStick-Med"))],
        },
    },
    "sonicpi_boombap": {
        "package": "sonic-pi-samples",
        "sounds": {
            "k": [(0.0, _SONIC_PI.format("bd_haus"))],
            "s": [(0.0, _SONIC_PI.format("sn_dolf"))],
            "h": [(0.0, _SONIC_PI.format("drum_cymbal_pedal")),
                  (0.55, _SONIC_PI.format("drum_cymbal_closed"))],
            "o": [(0.0, _SONIC_PI.format("drum_cymbal_open"))],
            "c": [(0.0, _SONIC_PI.format("drum_splash_soft"))],
            "p": [(0.0, _SONIC_PI.format("perc_snap"))],
            "r": [(0.0, _SONIC_PI.format("elec_wood"))],
        },
    },
    "sonicpi_acoustic": {
        "package": "sonic-pi-samples",
        "sounds": {
            "k": [(0.0, _SONIC_PI.format("drum_bass_soft")), (0.8, _SONIC_PI.format("drum_bass_hard"))],
            "s": [(0.0, _SONIC_PI.format("drum_snare_soft")), (0.8, _SONIC_PI.format("drum_snare_hard"))],
            "h": [(0.0, _SONIC_PI.format("drum_cymbal_pedal")),
                  (0.55, _SONIC_PI.format("drum_cymbal_closed"))],
            "o": [(0.0, _SONIC_PI.format("drum_cymbal_open"))],
            "c": [(0.0, _SONIC_PI.format("drum_cymbal_hard"))],
            "p": [(0.0, _SONIC_PI.format("perc_snap2"))],
            "r": [(0.0, _SONIC_PI.format("drum_tom_hi_soft"))],
        },
    },
}
_KIT_ORDER = ["gmrock", "sonicpi_boombap", "sonicpi_acoustic"]

# 16 steps a bar.  X = accent, x = normal, g = ghost, . = rest.
# "crash_every": a crash on the first step of every n-th bar (0 = never).
_PATTERNS: dict[str, dict] = {
    "boombap": {"bpm": (88, 94), "swing": 0.18, "crash_every": 0, "steps": {
        "k": "X.....x.x.X.....", "s": "....X.......X...", "h": "X.x.X.x.X.x.X.x."}},
    "dilla": {"bpm": (84, 90), "swing": 0.30, "crash_every": 0, "steps": {
        "k": "X..x......X.x...", "s": "....X..g....X..g", "h": "xgxgxgxgxgxgxgxg"}},
    "halftime": {"bpm": (140, 150), "swing": 0.0, "crash_every": 4, "steps": {
        "k": "X......X..X.....", "s": "........X.......", "p": "........x.......",
        "h": "xgxgxgxgxxxgxgxx", "o": "..............x."}},
    "rock": {"bpm": (100, 112), "swing": 0.0, "crash_every": 4, "steps": {
        "k": "X.......X.X.....", "s": "....X.......X...", "h": "x.x.x.x.x.x.x.x."}},
    "funk": {"bpm": (96, 104), "swing": 0.10, "crash_every": 0, "steps": {
        "k": "X..x..X...X..x..", "s": "....X..g.g..X..g", "h": "xxxxxxx.xxxxxxx.",
        "o": ".......x.......x", "r": "..g.......g....."}},
}
_PATTERN_ORDER = ["boombap", "halftime", "dilla", "rock", "funk"]
_VELOCITY = {"X": 1.0, "x": 0.72, "g": 0.38}

_FOF = "/usr/share/games/fretsonfire/data/songs/{}/{}/{}.ogg"
# (package, pack folder, song folder)
_FOF_SONGS = [
    ("fretsonfire-songs-muldjord", "muldjord", "armygeddon"),
    ("fretsonfire-songs-sectoid", "sectoid", "Feelings"),
    ("fretsonfire-songs-muldjord", "muldjord", "chaos_god"),
    ("fretsonfire-songs-sectoid", "sectoid", "Metal madness"),
    ("fretsonfire-songs-muldjord", "muldjord", "internal_degeneration"),
    ("fretsonfire-songs-sectoid", "sectoid", "War of freedom"),
    ("fretsonfire-songs-muldjord", "muldjord", "mutilated_mime"),
    ("fretsonfire-songs-sectoid", "sectoid", "Escape from chaosland"),
]
_FOF_OFFSETS = (0.30, 0.65)  # excerpt starts, as fractions of the song
_MUSIC_EXCERPT_SECONDS = 15.0

_OPENMSX = "/usr/share/games/openttd/baseset/openmsx/{}.mid"
_OPENMSX_SONGS = [
    "boogi_marabi_redfarn", "busy_schedule", "city_blues_redfarn", "chemistry_lab",
    "say_what_redfarn", "flying_scotsman", "the_hobo_redfarn", "keep_on_rolling",
    "mosey_along_redfarn", "modern_motion", "slow_neasy_redfarn", "ttsong_iii_imuh3",
    "be_sharp_bw_redfarn", "run_for_your_life", "careless_perc_redfarn", "the_fast_route",
    "no_work_song_redfarn", "midnight_snow_run", "5432gone_redfarn", "tttheme2",
    "moo_redfarn", "ultimate_run", "coconut_run2", "chuggachugga", "harp_harmony",
    "linns_basket", "mighty_giant_run", "relax_song", "train_filled_with_cash",
    "ttsong_iv_imuh3", "wood_whistles",
]
_SOUNDFONT = "/usr/share/sounds/sf2/TimGM6mb.sf2"
_MIDI_SKIP_SECONDS = 2.0  # after the first note, to get past count-ins


# --------------------------------------------------------------------------
# Debian packages
# --------------------------------------------------------------------------

def missing_packages() -> list[str]:
    """The packages of ``REQUIRED_DEBIAN_PACKAGES`` that dpkg does not list as installed."""
    missing = []
    for pkg in REQUIRED_DEBIAN_PACKAGES:
        try:
            out = subprocess.run(
                ["dpkg-query", "-W", "-f=${Status}", pkg],
                capture_output=True, text=True, check=False,
            ).stdout
        except OSError:  # no dpkg-query: not Debian, nothing can be checked
            out = ""
        # "install ok installed" (or "hold ok installed"); not "... config-files" etc.
        if out.split()[-1:] != ["installed"]:
            missing.append(pkg)
    return missing


def _check_packages() -> None:
    missing = missing_packages()
    if missing:
        names = " ".join(missing)
        raise CorpusError(
            f"the built-in corpus needs Debian packages that are not installed: {names}; "
            f"install them with: {INSTALL_HINT} {names}"
        )


def _package_versions() -> dict[str, str]:
    try:
        out = subprocess.run(
            ["dpkg-query", "-W", "-f=${Package}\t${Version}\n", *REQUIRED_DEBIAN_PACKAGES],
            capture_output=True, text=True, check=False,
        ).stdout
    except OSError:
        return {}
    versions = {}
    for line in out.splitlines():
        name, _, version = line.partition("\t")
        if name:
            versions[name] = version
    return dict(sorted(versions.items()))


def _first_line(cmd: list[str], needle: str = "") -> str:
    try:
        res = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return "unavailable"
    for line in (res.stdout + res.stderr).splitlines():
        if needle.lower() in line.lower() and line.strip():
            return line.strip()
    return "unknown"


def _tools() -> dict:
    return {
        "debian_packages": _package_versions(),
        "fluidsynth": _first_line(["fluidsynth", "--version"], "version"),
        "flite": _first_line(["flite", "--version"], "version"),
        "soundfont": _SOUNDFONT,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "soundfile": sf.__version__,
        "libsndfile": sf.__libsndfile_version__,
        "soxr": getattr(soxr, "__version__", "unknown"),
    }


# --------------------------------------------------------------------------
# Audio helpers
# --------------------------------------------------------------------------

class _Skip(Exception):
    """A recipe could not produce its clip; recorded in the manifest's ``skipped``."""


class _NoFit(Exception):
    """A recipe's clip does not fit the seconds left: its source is done."""


def _mono(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return x.mean(axis=1) if x.ndim == 2 else x


def _resample(x: np.ndarray, sr_in: int, sr_out: int) -> np.ndarray:
    if sr_in == sr_out:
        return np.ascontiguousarray(x, dtype=np.float64)
    return np.asarray(soxr.resample(x, sr_in, sr_out, quality="HQ"), dtype=np.float64)


def _read(path: str, sr: int, start_s: float = 0.0, seconds: float | None = None) -> np.ndarray:
    """Mono float64 at ``sr`` of ``path`` (optionally an excerpt)."""
    if not os.path.isfile(path):
        raise _Skip(f"{path}: file not found")
    try:
        with sf.SoundFile(path) as f:
            sr_in = f.samplerate
            start = int(round(start_s * sr_in))
            if start:
                f.seek(min(start, f.frames))
            frames = -1 if seconds is None else int(round(seconds * sr_in))
            x = f.read(frames, dtype="float64", always_2d=True)
    except (RuntimeError, sf.LibsndfileError) as e:
        raise _Skip(f"{path}: {e}") from e
    return _resample(_mono(x), sr_in, sr)


def _trim(x: np.ndarray, sr: int, rel_db: float = -45.0, pad_s: float = 0.04) -> np.ndarray:
    """Cut leading and trailing silence (below ``rel_db`` of the peak)."""
    peak = np.max(np.abs(x)) if x.size else 0.0
    if peak <= 0:
        return x[:0]
    idx = np.flatnonzero(np.abs(x) > peak * 10.0 ** (rel_db / 20.0))
    pad = int(pad_s * sr)
    return x[max(idx[0] - pad, 0): idx[-1] + pad + 1]


def _fade(x: np.ndarray, sr: int, fade_in_s: float = 0.005, fade_out_s: float = 0.005) -> np.ndarray:
    x = x.copy()
    n_in = min(int(fade_in_s * sr), len(x) // 2)
    n_out = min(int(fade_out_s * sr), len(x) // 2)
    if n_in:
        x[:n_in] *= np.linspace(0.0, 1.0, n_in, endpoint=False)
    if n_out:
        x[len(x) - n_out:] *= np.linspace(1.0, 0.0, n_out, endpoint=False)
    return x


def _fit(x: np.ndarray, sr: int, max_seconds: float) -> np.ndarray:
    """Truncate to ``max_seconds`` (with a short fade-out where cut)."""
    n = int(max_seconds * sr)
    if len(x) <= n:
        return x
    return _fade(x[:n], sr, 0.0, 0.03)


def _normalise(x: np.ndarray, target_dbfs: float = TARGET_RMS_DBFS) -> np.ndarray:
    """RMS to ``target_dbfs`` unless that would push the peak over -1 dBFS."""
    x = x - x.mean()
    rms = float(np.sqrt(np.mean(x * x))) if x.size else 0.0
    peak = float(np.max(np.abs(x))) if x.size else 0.0
    if rms < 1e-5 or peak <= 0:
        raise _Skip("silent")
    gain = min(10.0 ** (target_dbfs / 20.0) / rms, PEAK_CEILING / peak)
    return x * gain


def _silence(seconds: float, sr: int) -> np.ndarray:
    return np.zeros(int(round(seconds * sr)))


def _tile(x: np.ndarray, n: int) -> np.ndarray:
    reps = -(-n // len(x))
    return np.tile(x, reps)[:n]


# --------------------------------------------------------------------------
# Clips and recipes
# --------------------------------------------------------------------------

@dataclass
class _Clip:
    name: str  # file stem, e.g. "fillets_airplane"
    audio: np.ndarray
    source_files: list[str]
    source_packages: list[str]
    synthetic: bool = False
    info: dict = field(default_factory=dict)


# A recipe makes one clip of at most ``max_seconds`` seconds, or raises _Skip
# (broken source, recorded) or _NoFit (nothing of it fits: the source is done).
_Recipe = Callable[[float], "_Clip"]


@dataclass
class _Source:
    name: str
    weight: float
    recipes: Iterator[_Recipe]


class _Builder:
    """Holds the sample rate, a sample cache and the temp folder of one build."""

    def __init__(self, sample_rate: int, tmp: Path):
        self.sr = sample_rate
        self.tmp = tmp
        self.skipped: list[dict] = []
        self._cache: dict[str, np.ndarray] = {}
        self.flite = shutil.which("flite") or "flite"
        self.fluidsynth = shutil.which("fluidsynth") or "fluidsynth"

    def sample(self, path: str) -> np.ndarray:
        """The whole of ``path``, mono at the build's rate (cached)."""
        if path not in self._cache:
            self._cache[path] = _read(path, self.sr)
        return self._cache[path]

    # ---- speech ----------------------------------------------------------

    def _concat_lines(self, paths: deque, max_seconds: float, target_s: float,
                      gap_s: float, used: list[str]) -> np.ndarray:
        """Pop lines off ``paths`` into one clip of about ``target_s`` seconds."""
        sr = self.sr
        out: list[np.ndarray] = []
        total = 0.0
        limit = min(max_seconds, 20.0)
        while paths and total < target_s:
            path = paths[0]
            try:
                line = _trim(self.sample(path), sr)
            except _Skip as e:
                paths.popleft()
                self.skipped.append({"source": path, "reason": str(e)})
                continue
            sec = len(line) / sr
            add = sec + (gap_s if out else 0.0)
            if out and total + add > limit:
                break
            paths.popleft()
            if not line.size:
                continue
            if out:
                out.append(_silence(gap_s, sr))
            out.append(line)
            used.append(path)
            total += add
            if total >= limit:
                break
        if not out:
            raise _Skip("no lines left")
        return _fit(np.concatenate(out), sr, max_seconds)

    def fillets_speech(self) -> Iterator[_Recipe]:
        lines = deque(
            f"{_FILLETS_ROOT}/{level}/cs/{name}.ogg"
            for level, names in _FILLETS_SPEECH.items() for name in names.split()
        )
        while lines:
            def recipe(max_seconds: float) -> _Clip:
                used: list[str] = []
                first_level = lines[0].split("/sound/")[1].rsplit("/cs/", 1)[0]
                x = self._concat_lines(lines, max_seconds, 10.0, 0.35, used)
                return _Clip(f"fillets_{first_level.replace('/', '-')}", x, used,
                             ["fillets-ng-data-cs"], info={"language": "cs"})
            yield recipe

    def librivox(self) -> Iterator[_Recipe]:
        for ids in _LIBRIVOX_CLIPS:
            def recipe(max_seconds: float, ids=ids) -> _Clip:
                paths = deque(_LIBRIVOX.format(i) for i in ids)
                used: list[str] = []
                x = self._concat_lines(paths, max_seconds, 30.0, 0.4, used)
                return _Clip(f"librivox_{ids[0]}", x, used, ["pocketsphinx-testdata"],
                             info={"language": "en"})
            yield recipe

    def codec2(self) -> Iterator[_Recipe]:
        for path in _CODEC2_SPEECH:
            def recipe(max_seconds: float, path=path) -> _Clip:
                x = _fit(_trim(self.sample(path), self.sr), self.sr, max_seconds)
                return _Clip(f"codec2_{Path(path).stem}", x, [path], ["codec2-examples"],
                             info={"language": "en"})
            yield recipe

    def _flite(self, voice: str, text: str) -> np.ndarray:
        out = self.tmp / "flite.wav"
        try:
            subprocess.run([self.flite, "-voice", voice, "-t", text, "-o", str(out)],
                           check=True, capture_output=True, timeout=60)
        except (OSError, subprocess.SubprocessError) as e:
            raise _Skip(f"flite -voice {voice}: {e}") from e
        x = _trim(_read(str(out), self.sr), self.sr)
        out.unlink()
        return x

    def flite_speech(self) -> Iterator[_Recipe]:
        per = _FLITE_SENTENCES_PER_CLIP
        for i in range(0, len(_HARVARD), per):
            voice = _FLITE_VOICES[(i // per) % len(_FLITE_VOICES)]

            def recipe(max_seconds: float, i=i, voice=voice) -> _Clip:
                # whole sentences only, as many as fit
                parts: list[np.ndarray] = []
                texts: list[str] = []
                total = 0.0
                for text in _HARVARD[i:i + per]:
                    x = self._flite(voice, text)
                    add = len(x) / self.sr + (0.4 if parts else 0.0)
                    if total + add > max_seconds:
                        break
                    if parts:
                        parts.append(_silence(0.4, self.sr))
                    parts.append(x)
                    texts.append(text)
                    total += add
                if not parts:
                    raise _NoFit()
                return _Clip(f"flite_{voice}_harvard{i + 1:02d}", np.concatenate(parts),
                             [self.flite], ["flite"], synthetic=True,
                             info={"language": "en", "voice": voice, "text": " ".join(texts)})
            yield recipe

    # ---- drums -------------------------------------------------------------

    def drum_loops(self) -> Iterator[_Recipe]:
        for name, seconds in _DRUM_LOOPS:
            def recipe(max_seconds: float, name=name, seconds=seconds) -> _Clip:
                path = _SONIC_PI.format(name)
                loop = self.sample(path)
                n = int(min(seconds, max_seconds) * self.sr)
                x = _fade(_tile(loop, n), self.sr, 0.0, 0.03)
                return _Clip(f"sonicpi_{name}", x, [path], ["sonic-pi-samples"],
                             info={"repeats": round(n / len(loop), 2)})
            yield recipe

    def beat(self, pattern: str, kit: str, bpm: float, bars: int, seed: int
             ) -> tuple[np.ndarray, list[str]]:
        """Sequence one-shots of ``kit`` on the 16-step grid of ``pattern``."""
        sr = self.sr
        pat = _PATTERNS[pattern]
        sounds = _KITS[kit]["sounds"]
        rng = np.random.default_rng(seed)
        step = 60.0 / bpm / 4.0
        length = int(round(bars * 16 * step * sr))
        out = np.zeros(length + 4 * sr)
        used: set[str] = set()
        hits: list[tuple[str, int, float]] = []
        for bar in range(bars):
            for inst, steps in sorted(pat["steps"].items()):
                for i, ch in enumerate(steps):
                    if ch in _VELOCITY:
                        hits.append((inst, bar * 16 + i, _VELOCITY[ch]))
            every = pat["crash_every"]
            if every and bar % every == 0:
                hits.append(("c", bar * 16, 0.9))
        for inst, n, vel in hits:
            t = n * step
            if n % 2 == 1:
                t += pat["swing"] * step
            t += float(np.clip(rng.normal(0.0, 0.004), -0.01, 0.01))
            vel = vel * float(rng.uniform(0.88, 1.0))
            layers = sounds[inst]
            path = [p for v, p in layers if vel >= v][-1]
            x = self.sample(path)[: int(2.0 * sr)]
            start = max(int(round(t * sr)), 0)
            out[start:start + len(x)] += x * vel ** 1.5
            used.add(path)
        return out[:length], sorted(used)

    def _beat_spec(self, i: int) -> tuple[str, str, int]:
        pattern = _PATTERN_ORDER[i % len(_PATTERN_ORDER)]
        kit = _KIT_ORDER[i % len(_KIT_ORDER)]
        bpm = _PATTERNS[pattern]["bpm"][(i // len(_PATTERN_ORDER)) % 2]
        return pattern, kit, bpm

    def beats(self) -> Iterator[_Recipe]:
        n_combos = len(_PATTERN_ORDER) * len(_KIT_ORDER) * 2
        for i in range(n_combos):
            pattern, kit, bpm = self._beat_spec(i)

            def recipe(max_seconds: float, i=i, pattern=pattern, kit=kit, bpm=bpm) -> _Clip:
                bar_s = 240.0 / bpm
                bars = max(2, int(round(10.0 / bar_s)))
                x, used = self.beat(pattern, kit, bpm, bars, seed=1000 + i)
                x = _fit(x, self.sr, max_seconds)
                return _Clip(f"beat_{pattern}_{kit}_{bpm}bpm", x, used, [_KITS[kit]["package"]],
                             info={"pattern": pattern, "kit": kit, "bpm": bpm, "bars": bars,
                                   "seed": 1000 + i})
            yield recipe

    # ---- music -------------------------------------------------------------

    def fof(self) -> Iterator[_Recipe]:
        for frac in _FOF_OFFSETS:
            for package, pack, song in _FOF_SONGS:
                def recipe(max_seconds: float, frac=frac, package=package, pack=pack,
                           song=song) -> _Clip:
                    paths = [_FOF.format(pack, song, "song"), _FOF.format(pack, song, "guitar")]
                    if not os.path.isfile(paths[0]):
                        raise _Skip(f"{paths[0]}: file not found")
                    duration = sf.info(paths[0]).duration
                    start = round(frac * duration, 1)
                    seconds = min(_MUSIC_EXCERPT_SECONDS, max_seconds)
                    x = sum(_read(p, self.sr, start, seconds) for p in paths)
                    x = _fade(x, self.sr, 0.03, 0.03)
                    stem = song.lower().replace(" ", "_")
                    return _Clip(f"fof_{stem}_{int(start)}s", x, paths, [package],
                                 info={"start_seconds": start, "tracks": "song+guitar"})
                yield recipe

    def _fluidsynth(self, midi: str) -> np.ndarray:
        if not os.path.isfile(midi):
            raise _Skip(f"{midi}: file not found")
        out = self.tmp / "fluidsynth.raw"
        # Raw little-endian float: no dither, no header (a float WAV would get a
        # PEAK chunk with a timestamp).  No reverb or chorus.
        # -f /dev/null: ignore any ~/.fluidsynth start-up file.
        cmd = [self.fluidsynth, "-ni", "-q", "-f", os.devnull, "-R", "0", "-C", "0", "-g", "0.6",
               "-r", str(FLUIDSYNTH_RATE), "-O", "float", "-T", "raw", "-E", "little",
               "-F", str(out), _SOUNDFONT, midi]
        try:
            subprocess.run(cmd, capture_output=True, check=True, timeout=120)
            x = np.fromfile(out, dtype="<f4")
        except (OSError, subprocess.SubprocessError) as e:
            raise _Skip(f"fluidsynth {midi}: {e}") from e
        finally:
            out.unlink(missing_ok=True)
        if x.size < 2:
            raise _Skip(f"fluidsynth {midi}: no audio")
        return x[: x.size // 2 * 2].reshape(-1, 2).astype(np.float64).mean(axis=1)

    def midi(self) -> Iterator[_Recipe]:
        for song in _OPENMSX_SONGS:
            def recipe(max_seconds: float, song=song) -> _Clip:
                path = _OPENMSX.format(song)
                x = self._fluidsynth(path)
                peak = np.max(np.abs(x))
                onset = int(np.argmax(np.abs(x) > peak * 1e-2)) if peak > 0 else 0
                start = onset + int(_MIDI_SKIP_SECONDS * FLUIDSYNTH_RATE)
                n = int(min(_MUSIC_EXCERPT_SECONDS, max_seconds) * FLUIDSYNTH_RATE)
                x = x[start:start + n]
                x = _fade(_resample(x, FLUIDSYNTH_RATE, self.sr), self.sr, 0.03, 0.03)
                x = _fit(x, self.sr, max_seconds)
                return _Clip(f"openmsx_{song}", x, [path, _SOUNDFONT],
                             ["openttd-openmsx", "timgm6mb-soundfont"],
                             info={"start_seconds": round(start / FLUIDSYNTH_RATE, 3),
                                   "renderer": "fluidsynth -R 0 -C 0 -g 0.6 -r 22050"})
            yield recipe

    # ---- mix ---------------------------------------------------------------

    def mixes(self) -> Iterator[_Recipe]:
        lines = deque(
            f"{_FILLETS_ROOT}/{level}/cs/{name}.ogg"
            for level, names in _FILLETS_MIX.items() for name in names.split()
        )
        i = 0
        while lines:
            pattern, kit, bpm = self._beat_spec(i + 2)  # starts off the drums/ sequence

            def recipe(max_seconds: float, i=i, pattern=pattern, kit=kit, bpm=bpm) -> _Clip:
                sr = self.sr
                bar_s = 240.0 / bpm
                beat_s = bar_s / 4.0
                bars = max(2, int(round(14.0 / bar_s)))
                x, used = self.beat(pattern, kit, bpm, bars, seed=5000 + i)
                x = _fit(x, sr, max_seconds)
                end = len(x) / sr - 0.3
                vocals = np.zeros_like(x)
                voice_files: list[str] = []
                t = beat_s  # first line on beat 2
                while lines:
                    try:
                        line = _trim(self.sample(lines[0]), sr)
                    except _Skip as e:
                        self.skipped.append({"source": lines.popleft(), "reason": str(e)})
                        continue
                    if t + len(line) / sr > end:
                        break
                    voice_files.append(lines.popleft())
                    if not line.size:
                        continue
                    start = int(round(t * sr))
                    vocals[start:start + len(line)] += _normalise(line)
                    # next line starts on the first beat at least 0.25 s later
                    t = np.ceil((t + len(line) / sr + 0.25) / beat_s) * beat_s
                if not voice_files:
                    raise _NoFit()
                mix = vocals + 0.5 * _normalise(x)
                return _Clip(f"mix_{pattern}_{kit}_{bpm}bpm", mix, voice_files + used,
                             ["fillets-ng-data-cs", _KITS[kit]["package"]],
                             info={"pattern": pattern, "kit": kit, "bpm": bpm, "bars": bars,
                                   "seed": 5000 + i, "language": "cs"})
            yield recipe
            i += 1


# --------------------------------------------------------------------------
# Building
# --------------------------------------------------------------------------

def _licence(packages: list[str]) -> str:
    seen: list[str] = []
    for pkg in packages:
        lic = PACKAGE_LICENCES.get(pkg, "unknown")
        if lic not in seen:
            seen.append(lic)
    return " AND ".join(seen)


def _fill(budget: float, sources: list[_Source], b: _Builder) -> list[_Clip]:
    """Draw clips from ``sources`` in proportion to their weights until ``budget`` seconds."""
    produced = {s.name: 0.0 for s in sources}
    failures = {s.name: 0 for s in sources}  # skips in a row
    active = list(sources)
    clips: list[_Clip] = []
    remaining = budget
    while active and remaining >= MIN_CLIP_SECONDS:
        src = min(active, key=lambda s: (produced[s.name] / s.weight, sources.index(s)))
        recipe = next(src.recipes, None)
        if recipe is None:
            active.remove(src)
            continue
        try:
            clip = recipe(remaining)
            seconds = len(clip.audio) / b.sr
            if seconds < MIN_CLIP_SECONDS:
                raise _NoFit()
            clip.audio = _fade(_normalise(clip.audio), b.sr)
        except _NoFit:
            active.remove(src)
            continue
        except _Skip as e:
            b.skipped.append({"source": src.name, "reason": str(e)})
            failures[src.name] += 1
            if failures[src.name] >= 5:  # something is badly wrong with this source
                active.remove(src)
            continue
        failures[src.name] = 0
        produced[src.name] += seconds
        remaining -= seconds
        clips.append(clip)
    if remaining > 2 * MIN_CLIP_SECONDS + 1.0:
        b.skipped.append({"source": "+".join(s.name for s in sources),
                          "reason": f"sources used up: {remaining:.1f} of {budget:.1f} s not filled"})
    return clips


def build_corpus(out_dir: Path, minutes: float = 10.0, sample_rate: int = 11025) -> Path:
    """Write the corpus into ``out_dir`` (created; must be empty) and return it.

    Raises ``CorpusError`` when Debian packages are missing or the arguments are bad.
    """
    if not (minutes > 0):
        raise CorpusError(f"minutes must be positive, got {minutes}")
    if not (4000 <= int(sample_rate) <= 96000):
        raise CorpusError(f"sample_rate out of range: {sample_rate}")
    sample_rate = int(sample_rate)
    _check_packages()
    out_dir = Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()):
        raise CorpusError(f"{out_dir} is not empty")
    out_dir.mkdir(parents=True, exist_ok=True)

    total = float(minutes) * 60.0
    budgets = {c: SHARES[c] * total for c in CATEGORIES}
    with tempfile.TemporaryDirectory(prefix="earshot-corpus-") as tmp:
        b = _Builder(sample_rate, Path(tmp))
        synthetic = _fill(budgets["speech"] * SYNTHETIC_SHARE,
                          [_Source("flite", 1.0, b.flite_speech())], b)
        synth_s = sum(len(c.audio) for c in synthetic) / sample_rate
        real = _fill(budgets["speech"] - synth_s, [
            _Source("fillets", 0.75, b.fillets_speech()),
            _Source("librivox", 0.15, b.librivox()),
            _Source("codec2", 0.10, b.codec2()),
        ], b)
        per_cat = {
            "speech": real + synthetic,
            "drums": _fill(budgets["drums"], [
                _Source("beats", 0.6, b.beats()),
                _Source("sonicpi_loops", 0.4, b.drum_loops()),
            ], b),
            "music": _fill(budgets["music"], [
                _Source("fretsonfire", 0.5, b.fof()),
                _Source("openmsx", 0.5, b.midi()),
            ], b),
            "mix": _fill(budgets["mix"], [_Source("mix", 1.0, b.mixes())], b),
        }

    entries = []
    seconds_by_cat = {}
    for cat in CATEGORIES:
        (out_dir / cat).mkdir(exist_ok=True)
        cat_seconds = 0.0
        for n, clip in enumerate(per_cat[cat]):
            rel = f"{cat}/{clip.name}_{n:03d}.wav"
            pcm = pcm16(clip.audio)
            path = out_dir / rel
            sf.write(str(path), pcm, sample_rate, subtype="PCM_16", format="WAV")
            seconds = len(pcm) / sample_rate
            cat_seconds += seconds
            entries.append({
                "path": rel,
                "category": cat,
                "source_package": clip.source_packages[0],
                "source_packages": clip.source_packages,
                "source_file": clip.source_files[0],
                "source_files": clip.source_files,
                "licence": _licence(clip.source_packages),
                "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
                "seconds": round(seconds, 4),
                "synthetic": clip.synthetic,
                **({"info": clip.info} if clip.info else {}),
            })
        seconds_by_cat[cat] = round(cat_seconds, 3)

    synthetic_s = sum(e["seconds"] for e in entries if e["synthetic"])
    if seconds_by_cat["speech"] and synthetic_s > SYNTHETIC_MAX_SHARE * seconds_by_cat["speech"]:
        raise CorpusError("internal error: synthetic speech above 20 % of the speech")
    manifest = {
        "corpus_version": CORPUS_VERSION,
        "sample_rate": sample_rate,
        "channels": 1,
        "subtype": "PCM_16",
        "minutes": float(minutes),
        "total_seconds": round(sum(seconds_by_cat.values()), 3),
        "shares": SHARES,
        "seconds_by_category": seconds_by_cat,
        "synthetic_speech_seconds": round(synthetic_s, 3),
        "clips": sorted(entries, key=lambda e: e["path"]),
        "skipped": b.skipped,
        "tools": _tools(),
    }
    (out_dir / "manifest.json").write_text(
        json.dumps(manifest, indent=2, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8")
    return out_dir


# --------------------------------------------------------------------------
# Cache
# --------------------------------------------------------------------------

def _user_cache_root() -> Path:
    try:
        from platformdirs import user_cache_dir
        return Path(user_cache_dir("earshot"))
    except ImportError:  # pragma: no cover - platformdirs is a dependency
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        return Path(base) / "earshot"


def _corpus_key(minutes: float, sample_rate: int) -> str:
    return f"corpus-v{CORPUS_VERSION}-{float(minutes):g}min-{int(sample_rate)}"


def default_corpus_dir(minutes: float = 10.0, sample_rate: int = 11025) -> Path:
    """Where ``ensure_corpus`` keeps this corpus: ``<user cache>/earshot/corpus-v2-10min-11025``."""
    return _user_cache_root() / _corpus_key(minutes, sample_rate)


def ensure_corpus(minutes: float = 10.0, sample_rate: int = 11025,
                  cache_dir: Path | str | None = None, force: bool = False) -> Path:
    """The corpus folder, built on first use and reused afterwards.

    ``cache_dir`` replaces the user cache folder (``platformdirs.user_cache_dir('earshot')``)
    as the parent of the ``corpus-...`` folder.  The build goes to a temporary
    sibling that is renamed into place, so a half-built corpus is never reused.
    ``force`` rebuilds even when a cached corpus exists (and then replaces it).
    """
    root = Path(cache_dir) if cache_dir is not None else _user_cache_root()
    final = root / _corpus_key(minutes, sample_rate)
    if not force and (final / "manifest.json").is_file():
        return final
    _check_packages()
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.building-", dir=root))
    try:
        build_corpus(tmp, minutes, sample_rate)
        if final.exists() and (force or not (final / "manifest.json").is_file()):
            # move the old one aside first, so the swap itself is one rename
            old = Path(tempfile.mkdtemp(prefix=f".{final.name}.old-", dir=root))
            os.rename(final, old / "corpus")
            shutil.rmtree(old, ignore_errors=True)
        try:
            os.rename(tmp, final)
        except OSError:
            if (final / "manifest.json").is_file():  # another process won the race
                shutil.rmtree(tmp, ignore_errors=True)
            else:
                raise
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


# --------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m earshot.benchmark.data.corpus",
                                description="Build the built-in earshot corpus.")
    p.add_argument("--print-packages", action="store_true",
                   help="print the Debian packages it needs, space-separated, and exit")
    p.add_argument("--minutes", type=float, default=10.0)
    p.add_argument("--sample-rate", type=int, default=11025)
    p.add_argument("--out", type=Path, default=None,
                   help="build into this (empty) folder instead of the cache")
    args = p.parse_args(argv)
    if args.print_packages:
        print(" ".join(REQUIRED_DEBIAN_PACKAGES))
        return 0
    t0 = time.perf_counter()
    try:
        if args.out is not None:
            path = build_corpus(args.out, args.minutes, args.sample_rate)
        else:
            path = ensure_corpus(args.minutes, args.sample_rate)
    except CorpusError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    manifest = json.loads((path / "manifest.json").read_text(encoding="utf-8"))
    by_cat = ", ".join(f"{c} {s / 60:.2f} min" for c, s in manifest["seconds_by_category"].items())
    print(f"{path}: {len(manifest['clips'])} clips, {manifest['total_seconds'] / 60:.2f} min "
          f"({by_cat}) in {time.perf_counter() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
