#!/usr/bin/env bash
# Build a labelled folder of REAL recordings from Debian packages (no download at run time
# beyond apt): Sonic Pi's instrument/drum/ambient samples (44.1 kHz flac, mono and stereo),
# grouped into label folders by their name prefix, plus ALSA's spoken channel names (48 kHz wav)
# and the freedesktop sound theme's event sounds (ogg vorbis) as two more classes.
#   sudo apt-get install sonic-pi-samples alsa-utils sound-theme-freedesktop
#   egs/folder/local/make_real_folder.sh /tmp/real_audio
set -euo pipefail
out=${1:?usage: $0 <output folder>}
samples=/usr/share/sonic-pi/samples
[ -d "$samples" ] || { echo "$samples not found: apt-get install sonic-pi-samples" >&2; exit 1; }
declare -A name=([ambi]=ambient [bass]=bass [bd]=bass_drum [drum]=drum [elec]=electronic
                 [glitch]=glitch [guit]=guitar [loop]=loop [perc]=percussion [sn]=snare
                 [tabla]=tabla [vinyl]=vinyl)
rm -rf "$out"; mkdir -p "$out"
for f in "$samples"/*.flac; do
  prefix=$(basename "$f"); prefix=${prefix%%_*}
  label=${name[$prefix]:-}
  [ -n "$label" ] || continue
  mkdir -p "$out/$label"; ln -s "$f" "$out/$label/"
done
if [ -d /usr/share/sounds/alsa ]; then
  mkdir -p "$out/speech"; ln -s /usr/share/sounds/alsa/*.wav "$out/speech/"
  rm -f "$out/speech/Noise.wav"
fi
if [ -d /usr/share/sounds/freedesktop/stereo ]; then
  mkdir -p "$out/notification"; ln -s /usr/share/sounds/freedesktop/stereo/*.oga "$out/notification/"
fi
find "$out" -mindepth 1 -maxdepth 1 -type d | while read -r d; do
  echo "$(basename "$d"): $(ls "$d" | wc -l) files"
done
