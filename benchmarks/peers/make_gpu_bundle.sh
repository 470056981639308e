#!/usr/bin/env bash
# Builds what gpu_run.sh needs on the offline GPU machine (Python 3.12, torch
# preinstalled): benchmarks/peers/whl/ (wheels) and benchmarks/peers/data/ (encoded Multi30k,
# plus the raw train/test text that nmt reads), both kept out of git by benchmarks/peers/.gitignore
# (so a copy of the working tree must carry them explicitly).
#
#   bash benchmarks/peers/make_gpu_bundle.sh            # PY_VER=3.12 by default
#   PY_VER=3.11 WHL_OUT=/tmp/whl311 bash benchmarks/peers/make_gpu_bundle.sh   # same set for a local test
#
# nmt (this repository) needs no wheel there: gpu_run.sh runs it from the working tree.
#
# Wheels = the packages that Joey NMT 2.3.0 / OpenNMT-py 3.5.1 import on the
# train + translate code paths and that are NOT preinstalled there (the
# machine has numpy pyyaml tqdm sentencepiece sacrebleu tensorboard torch pandas
# pyarrow huggingface-hub fsspec requests xxhash matplotlib pillow six protobuf
# packaging filelock regex):
#   joeynmt 2.3.0        -> subword-nmt (tokenizers.py imports it at module level),
#                           importlib-metadata (helpers.py; undeclared) -> zipp, lazy-importer
#   opennmt-py 3.5.1     -> configargparse, pyonmttok (vocabularies), and, because
#                           onmt/transforms/__init__.py imports every transform module,
#                           pyahocorasick, rapidfuzz, fasttext (fasttext-wheel) and spacy.
#   spacy (+ ~25 packages, >40 MB) is replaced by a 1 kB stub wheel
#   "peers-stub-spacy" whose `spacy` module only exists so that
#   onmt/transforms/terminology.py can be imported; any use raises ImportError.
# Declared but not imported on these paths (left out): joeynmt -> future,
# sacremoses, seaborn, wrapt, plotly, datasets, pylint, yapf, flake8, pytest;
# opennmt-py -> ctranslate2 (converter), flask + waitress (REST server).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PEERS_ENV="${PEERS_ENV:-$HOME/.cache/nmt-peers/env}"
PEERS_DATA="${PEERS_DATA:-$HOME/.cache/nmt-peers/data}"
PY_VER="${PY_VER:-3.12}"
WHL_OUT="${WHL_OUT:-$HERE/whl}"
DATA_OUT="${DATA_OUT:-$HERE/data}"

PKGS=(
    joeynmt==2.3.0 subword-nmt==0.3.8 importlib-metadata==10.2.0 zipp==4.1.2 lazy-importer==0.1.0
    opennmt-py==3.5.1 configargparse==1.9.0 pyonmttok==1.38.1 pyahocorasick==2.3.1
    rapidfuzz==3.14.6 fasttext-wheel==0.9.2
)
mkdir -p "$WHL_OUT"
for p in "${PKGS[@]}"; do
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version "$PY_VER" \
        --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
        --platform manylinux2014_x86_64 -d "$WHL_OUT" "$p"
done

# stub wheel for spacy (see header)
STUB="$(mktemp -d)"
mkdir -p "$STUB/spacy" "$STUB/peers_stub_spacy-0.0.0.dist-info"
cat > "$STUB/spacy/__init__.py" <<'EOF'
"""Stub installed by peers/make_gpu_bundle.sh: OpenNMT-py 3.5.1 imports spacy at
start-up (onmt/transforms/terminology.py) but only the `terminology` transform,
unused here, calls it. Any real use fails loudly."""


def __getattr__(name):
    raise ImportError(f"spacy is a stub here (peers GPU bundle); spacy.{name} is unavailable")
EOF
cat > "$STUB/peers_stub_spacy-0.0.0.dist-info/METADATA" <<'EOF'
Metadata-Version: 2.1
Name: peers-stub-spacy
Version: 0.0.0
Summary: import-only stub of spacy for OpenNMT-py 3.5.1 on an offline machine
EOF
cat > "$STUB/peers_stub_spacy-0.0.0.dist-info/WHEEL" <<'EOF'
Wheel-Version: 1.0
Generator: peers-make-gpu-bundle
Root-Is-Purelib: true
Tag: py3-none-any
EOF
python3 - "$STUB" "$WHL_OUT/peers_stub_spacy-0.0.0-py3-none-any.whl" <<'EOF'
import base64, hashlib, os, sys, zipfile
root, out = sys.argv[1], sys.argv[2]
files = []
for d, _, names in os.walk(root):
    for n in sorted(names):
        files.append(os.path.relpath(os.path.join(d, n), root))
rec = "peers_stub_spacy-0.0.0.dist-info/RECORD"
lines = []
with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
    for f in sorted(files):
        data = open(os.path.join(root, f), "rb").read()
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        lines.append(f"{f},sha256={digest},{len(data)}")
        z.writestr(f, data)
    lines.append(f"{rec},,")
    z.writestr(rec, "\n".join(lines) + "\n")
EOF
rm -rf "$STUB"

# encoded data (what gpu_run.sh reads)
[ -f "$PEERS_DATA/sp/train.de" ] || PEERS_ENV="$PEERS_ENV" PEERS_DATA="$PEERS_DATA" bash "$HERE/prepare_data.sh"
mkdir -p "$DATA_OUT/sp" "$DATA_OUT/raw"
for s in train val test; do
    cp "$PEERS_DATA/sp/$s.de" "$PEERS_DATA/sp/$s.en" "$DATA_OUT/sp/"
done
cp "$PEERS_DATA/sp/vocab.txt" "$PEERS_DATA/sp/spm.bpe8000.model" "$PEERS_DATA/sp/stats.tsv" "$DATA_OUT/sp/"
cp "$PEERS_DATA/raw/test_2016_flickr.en" "$DATA_OUT/raw/"
# raw text for nmt, which applies spm.bpe8000.model itself (gpu_run.sh TOOLKITS=nmt)
cp "$PEERS_DATA/raw/train.de" "$PEERS_DATA/raw/train.en" "$PEERS_DATA/raw/test_2016_flickr.de" "$DATA_OUT/raw/"
ls -la "$WHL_OUT"
du -sh "$WHL_OUT" "$DATA_OUT"
du -cb "$WHL_OUT" "$DATA_OUT" | tail -1 | awk '{printf "total %.1f MiB\n", $1/1048576}'
