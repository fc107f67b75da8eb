#!/usr/bin/env bash
# Conversation reuse (docs/SERVING.md): time to first token of a follow-up turn that extends a
# kept prompt prefix, against the first turn's, on `flashmem serve` over loopback. Each turn is a
# non-streaming completion of max_tokens 1, so its wall time is its time to first token. Prints
# both times, their ratio and the cached_tokens the server reports. The machine is shared: read
# the ratio, and the load average it prints.
#
#   bench/reuse_ttft.sh [MODEL.gguf] [INDEXER.gguf]   (default: the bundled needle-lm and its indexer)
#
# Environment: LENGTH (8000: turn 1's prompt tokens; needle-lm's context is 8192), POLICY (lsa),
# BUDGET (0.1), THREADS (2), PORT (a free one), BIN.
set -euo pipefail
BIN=${BIN:-build/bin/flashmem}
MODEL=${1:-models/needle-lm.gguf}
INDEXER=${2:-models/needle-lm-indexer.gguf}
LENGTH=${LENGTH:-8000}
POLICY=${POLICY:-lsa}
BUDGET=${BUDGET:-0.1}
THREADS=${THREADS:-2}
PORT=${PORT:-$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}
WORK=$(mktemp -d)
trap 'kill "$SERVER" 2>/dev/null || true; wait "$SERVER" 2>/dev/null || true; rm -rf "$WORK"' EXIT

"$BIN" gen-task -m "$MODEL" --length "$LENGTH" --seed 1 --out "$WORK/turn1.txt" > /dev/null
"$BIN" serve -m "$MODEL" --indexer "$INDEXER" --policy "$POLICY" --budget "$BUDGET" -t "$THREADS" \
  --port "$PORT" --state-dir "$WORK/state" --reuse-quota-mb 1024 2> "$WORK/serve.log" &
SERVER=$!
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$PORT/health" > /dev/null && break; sleep 0.2; done

# One completion: prints "seconds cached_tokens text" for the prompt in file $1.
turn() {
  python3 - "$1" "$PORT" <<'PY'
import json, sys, time, urllib.request
prompt = open(sys.argv[1]).read()
body = json.dumps({"prompt": prompt, "max_tokens": 1, "temperature": 0}).encode()
request = urllib.request.Request(f"http://127.0.0.1:{sys.argv[2]}/v1/completions", body,
                                 {"Content-Type": "application/json"})
t0 = time.monotonic()
reply = json.load(urllib.request.urlopen(request, timeout=600))
seconds = time.monotonic() - t0
usage = reply["usage"]
print(f'{seconds:.3f} {usage["prompt_tokens_details"]["cached_tokens"]} {usage["prompt_tokens"]} '
      f'{json.dumps(reply["choices"][0]["text"])}')
PY
}
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg); policy $POLICY, budget $BUDGET, $THREADS threads"
read -r t1 c1 p1 text1 < <(turn "$WORK/turn1.txt")
{ cat "$WORK/turn1.txt"; python3 -c 'import json,sys; sys.stdout.write(json.loads(sys.argv[1]))' "$text1";
  printf ' and the next value is'; } > "$WORK/turn2.txt"
read -r t2 c2 p2 _ < <(turn "$WORK/turn2.txt")
echo "| turn | prompt tokens | cached tokens | time to first token (s) |"
echo "|---|---:|---:|---:|"
echo "| 1 | $p1 | $c1 | $t1 |"
echo "| 2 | $p2 | $c2 | $t2 |"
python3 -c "print(f'turn 2 / turn 1 time to first token: {$t2 / $t1:.3f}')"
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
