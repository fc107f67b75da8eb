#!/usr/bin/env bash
# Prefill/decode disaggregation (docs/SERVING.md, "Prefill and decode servers"): one prefill and
# one decode server over loopback on a shared slow tier (a private redis-server, or one disk
# directory). Sends one LENGTH-token prompt to the decode server (streamed, greedy) and reports
#   prefill time    the prefill server's, from the call's arrival to the persisted sequence
#   hand-off time   from its answer to the decode server's first token (attach + last part)
#   decode tok/s    tokens after the first over the time after the first (client side)
#   recall bytes per decode step, from the decode server's /metrics
# and the flashmem_handoff_seconds histogram's sum. Not a timed test: numbers mean something on a
# quiet machine only (it prints the load average).
#
#   bench/handoff.sh [MODEL.gguf] [INDEXER.gguf]   (default: the bundled needle-lm and its indexer)
#
# Environment: LENGTH (16384: prompt tokens; the model's context must hold LENGTH + MAX_TOKENS),
# STORE (redis | disk), MAX_TOKENS (64), POLICY (lsa), BUDGET (0.1), THREADS (2: each server's),
# CTX (LENGTH + MAX_TOKENS + 64: each server's --ctx), BIN, REDIS_SERVER (redis-server).
set -euo pipefail
BIN=${BIN:-build/bin/flashmem}
MODEL=${1:-models/needle-lm.gguf}
INDEXER=${2:-models/needle-lm-indexer.gguf}
LENGTH=${LENGTH:-16384}
STORE=${STORE:-redis}
MAX_TOKENS=${MAX_TOKENS:-64}
POLICY=${POLICY:-lsa}
BUDGET=${BUDGET:-0.1}
THREADS=${THREADS:-2}
CTX=${CTX:-$((LENGTH + MAX_TOKENS + 64))}  # 64: room for the chat-free prompt's BOS and rounding
REDIS_SERVER=${REDIS_SERVER:-redis-server}
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
WORK=$(mktemp -d)
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

wait_health() {  # PORT LOG
  for _ in $(seq 300); do curl -sf "http://127.0.0.1:$1/health" > /dev/null && return 0; sleep 0.2; done
  echo "the server on port $1 did not start:" >&2; cat "$2" >&2; exit 1
}

case "$STORE" in
  redis)
    REDIS_PORT=$(free_port)
    "$REDIS_SERVER" --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no --loglevel warning \
      > "$WORK/redis.log" 2>&1 &
    PIDS+=($!)
    for _ in $(seq 50); do redis-cli -p "$REDIS_PORT" ping > /dev/null 2>&1 && break; sleep 0.1; done
    # ttl: an hour, far beyond the request; the hand-off entries a crash leaves go by themselves.
    KV_STORE="redis://127.0.0.1:$REDIS_PORT/handoff?ttl=3600" ;;
  disk) KV_STORE="disk:$WORK/kv" ;;
  *) echo "STORE must be redis or disk, not '$STORE'" >&2; exit 2 ;;
esac

"$BIN" gen-task -m "$MODEL" --length "$LENGTH" --seed 1 --out "$WORK/prompt.txt" > /dev/null
COMMON=(-m "$MODEL" --indexer "$INDEXER" --policy "$POLICY" --budget "$BUDGET" -t "$THREADS" --ctx "$CTX"
        --kv-store "$KV_STORE" --reuse-quota-mb 0 --request-timeout 3000)
PREFILL_PORT=$(free_port)
"$BIN" serve "${COMMON[@]}" --role prefill --port "$PREFILL_PORT" 2> "$WORK/prefill.log" &
PIDS+=($!)
wait_health "$PREFILL_PORT" "$WORK/prefill.log"
DECODE_PORT=$(free_port)
"$BIN" serve "${COMMON[@]}" --role decode --prefill-url "http://127.0.0.1:$PREFILL_PORT" --port "$DECODE_PORT" \
  2> "$WORK/decode.log" &
PIDS+=($!)
wait_health "$DECODE_PORT" "$WORK/decode.log"

echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg); $POLICY at $BUDGET, store $STORE, $THREADS threads each"
python3 - "$WORK/prompt.txt" "$DECODE_PORT" "$MAX_TOKENS" <<'PY'
import json, sys, time, urllib.request
prompt, port, max_tokens = open(sys.argv[1]).read(), sys.argv[2], int(sys.argv[3])
body = json.dumps({"prompt": prompt, "max_tokens": max_tokens, "temperature": 0, "stream": True,
                   "stream_options": {"include_usage": True}}).encode()
request = urllib.request.Request(f"http://127.0.0.1:{port}/v1/completions", body,
                                 {"Content-Type": "application/json"})
t0 = time.monotonic()
first = last = None
usage = None
with urllib.request.urlopen(request, timeout=3000) as reply:
    for line in reply:
        line = line.decode().strip()
        if not line.startswith("data: ") or line == "data: [DONE]":
            continue
        event = json.loads(line[6:])
        if "error" in event:
            sys.exit(f"the request failed: {event['error']['message']}")
        if event.get("usage"):
            usage = event["usage"]
        if event.get("choices") and event["choices"][0].get("text"):
            last = time.monotonic()
            first = first or last
metrics = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics").read().decode()
def metric(name):
    return next(float(l.split()[-1]) for l in metrics.splitlines() if l.startswith(name + " "))
handoff = usage.get("handoff", {})
steps = usage["completion_tokens"]
decode_rate = (steps - 1) / (last - first) if steps > 1 and last > first else float("nan")
print("| prompt tokens | handed off | prefill (s) | hand-off (s) | time to first token (s) | decode tok/s | recall bytes / step |")
print("|---:|---:|---:|---:|---:|---:|---:|")
print(f"| {usage['prompt_tokens']} | {handoff.get('prefilled_tokens', 0)} | {handoff.get('prefill_seconds', 0):.3f} "
      f"| {handoff.get('handoff_seconds', 0):.3f} | {first - t0:.3f} | {decode_rate:.2f} "
      f"| {metric('flashmem_recall_bytes_total') / max(steps, 1):.0f} |")
print(f"flashmem_handoff_seconds: sum {metric('flashmem_handoff_seconds_sum'):.3f} over "
      f"{metric('flashmem_handoff_seconds_count'):.0f} requests")
PY
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
