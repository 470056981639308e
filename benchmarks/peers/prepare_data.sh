#!/usr/bin/env bash
# Common preprocessing for the peer baselines (Joey NMT, OpenNMT-py).
#
# Multi30k task1 raw, German->English: train / val / test_2016_flickr.
# One joint sentencepiece BPE model (vocab 8000) trained on train.de + train.en;
# every split is encoded into space-separated pieces so that both toolkits read
# byte-identical tokenised input. One shared vocabulary file (the 7997 real
# pieces of the model, without <unk>/<s>/</s>) is given to both toolkits.
#
# Usage: bash benchmarks/peers/prepare_data.sh
# Env:   PEERS_ENV   (default $HOME/.cache/nmt-peers/env)   venvs live here
#        PEERS_DATA  (default $HOME/.cache/nmt-peers/data)  output folder
#        MULTI30K    a bare git dir of github.com/multi30k/dataset, or a folder
#                    holding {train,val,test_2016_flickr}.{de,en}.gz
#                    (default, first that exists: $NMT_DATA_MIRROR/multi30k,
#                    ../shared/data/multi30k beside the repository root,
#                    data/multi30k inside the repository; if none does,
#                    `python3 scripts/fetch_multi30k.py` fills data/multi30k)
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
PEERS_ENV="${PEERS_ENV:-$HOME/.cache/nmt-peers/env}"
PEERS_DATA="${PEERS_DATA:-$HOME/.cache/nmt-peers/data}"
SPM_PY="$PEERS_ENV/spm/bin/python"

# --- small venv with sentencepiece + sacrebleu (shared by bleu.sh) ---------
if ! "$SPM_PY" -c "import sentencepiece, sacrebleu" 2>/dev/null; then
    mkdir -p "$PEERS_ENV"
    python3 -m venv "$PEERS_ENV/spm"
    "$PEERS_ENV/spm/bin/pip" install -q "sentencepiece==0.2.3" "sacrebleu==2.6.0"
fi

# --- raw data ---------------------------------------------------------------
if [ -z "${MULTI30K:-}" ]; then
    for cand in ${NMT_DATA_MIRROR:+"$NMT_DATA_MIRROR/multi30k"} "$REPO/../shared/data/multi30k" \
            "$REPO/data/multi30k"; do
        if [ -f "$cand/train.de.gz" ]; then MULTI30K="$cand"; break; fi
    done
    if [ -z "${MULTI30K:-}" ]; then
        (cd "$REPO" && python3 scripts/fetch_multi30k.py --langs de en)
        MULTI30K="$REPO/data/multi30k"
    fi
fi
echo "Multi30k from $MULTI30K"
mkdir -p "$PEERS_DATA/raw" "$PEERS_DATA/sp"
for split in train val test_2016_flickr; do
    for l in de en; do
        out="$PEERS_DATA/raw/$split.$l"
        if [ -f "$MULTI30K/HEAD" ] || [ -d "$MULTI30K/objects" ]; then
            git -C "$MULTI30K" show "HEAD:data/task1/raw/$split.$l.gz" | gunzip -c > "$out"
        else
            gunzip -c "$MULTI30K/$split.$l.gz" > "$out"
        fi
    done
done
# short names used by the toolkits: train / val / test
for l in de en; do
    ln -sf "test_2016_flickr.$l" "$PEERS_DATA/raw/test.$l"
done
wc -l "$PEERS_DATA"/raw/{train,val,test_2016_flickr}.{de,en}

# --- joint sentencepiece BPE + encoding ------------------------------------
"$SPM_PY" - "$PEERS_DATA" <<'EOF'
import sys, pathlib, sentencepiece as spm
d = pathlib.Path(sys.argv[1])
prefix = d / "sp" / "spm.bpe8000"
spm.SentencePieceTrainer.train(
    input=[str(d / "raw/train.de"), str(d / "raw/train.en")],
    model_prefix=str(prefix), model_type="bpe", vocab_size=8000,
    character_coverage=1.0, input_sentence_size=0, shuffle_input_sentence=False,
    num_threads=2, minloglevel=2)
sp = spm.SentencePieceProcessor(model_file=str(prefix) + ".model")
stats = {}
for split, short in [("train", "train"), ("val", "val"), ("test_2016_flickr", "test")]:
    for l in ("de", "en"):
        lines = (d / f"raw/{split}.{l}").read_text(encoding="utf-8").split("\n")
        if lines and lines[-1] == "":
            lines = lines[:-1]
        enc = [" ".join(sp.encode(s, out_type=str)) for s in lines]
        (d / f"sp/{short}.{l}").write_text("\n".join(enc) + "\n", encoding="utf-8")
        ntok = sum(len(e.split()) for e in enc)
        stats[(short, l)] = (len(enc), ntok)
with open(d / "sp/stats.tsv", "w") as f:
    f.write("split\tlang\tsentences\tpieces\tpieces_per_sentence\n")
    for (s, l), (n, t) in stats.items():
        f.write(f"{s}\t{l}\t{n}\t{t}\t{t / n:.3f}\n")
print(open(d / "sp/stats.tsv").read())
EOF
# vocabulary for both toolkits: every real piece (ids 3..7999); the toolkits
# add their own <unk>/<pad>/<s>/</s>.
"$SPM_PY" "$HERE/peerbench.py" spm-vocab --spm "$PEERS_DATA/sp/spm.bpe8000.model" --out "$PEERS_DATA/sp/vocab.txt"
echo "prepared data in $PEERS_DATA/sp"
