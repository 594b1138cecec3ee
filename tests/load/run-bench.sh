#!/usr/bin/env bash
# Runs the edge benchmark of issue 2 on this machine: an embedded NATS server
# (JetStream, with the room stream in a temporary directory) and the load
# generator pinned to one core, `sensorcast edge` pinned to the
# other, and two scenarios, each a sweep of delivery rates up to saturation:
#
#   rooms      10k connections over 1k rooms (10 per room)
#   broadcast  5k connections in one room
#
# Usage: tests/load/run-bench.sh [scenario...]        (default: rooms broadcast)
#        tests/load/run-bench.sh smoke                 (1000 conns, 100 rooms, 5 s)
# Settings (environment):
#   DURATION=10s WARMUP=3s            measured time and warm-up of each rate step
#   ROOMS_DELIVERIES=50k,100k,...     deliveries/s steps of the rooms sweep
#   BCAST_DELIVERIES=100k,200k,...    deliveries/s steps of the broadcast sweep
#   BCAST_SEND_QUEUE=1024             edge send queue (SENSORCAST_SEND_QUEUE) in the
#                                     broadcast scenario; the contract default 256 elsewhere
#   EDGE_CPU=1 GEN_CPU=0              cores for the edge / for NATS + generator
#   RESULTS=bin/bench                 where the report and JSON lines go
#   PERF=1                            record the edge with `perf record -g`
#                                     during each scenario (when perf works)
#   EDGE_BIN=path                     use this edge binary instead of building bin/sensorcast
#   TRACING=off                       off, or a ratio of room messages the edge traces
#                                     (0.01, 1): spans go over OTLP/gRPC to a sink
#                                     (sensorcast-load --serve-otlp) on the generator's core
# Everything listens on 127.0.0.1 only; processes started here are stopped on exit.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BIN=$ROOT/bin
RESULTS=${RESULTS:-$ROOT/bin/bench}
DURATION=${DURATION:-10s}
WARMUP=${WARMUP:-3s}
ROOMS_DELIVERIES=${ROOMS_DELIVERIES:-50k,100k,150k,200k,300k}
BCAST_DELIVERIES=${BCAST_DELIVERIES:-100k,200k,500k,1M,1.5M}
BCAST_SEND_QUEUE=${BCAST_SEND_QUEUE:-1024}
EDGE_CPU=${EDGE_CPU:-1}
GEN_CPU=${GEN_CPU:-0}
NATS_PORT=${NATS_PORT:-14222}
EDGE_PORT=${EDGE_PORT:-18080}
SECRET=${SECRET:-bench-secret-0123456789abcdef}
PERF=${PERF:-0}
TRACING=${TRACING:-off}
OTLP_PORT=${OTLP_PORT:-14317}
SCENARIOS=("$@")
[[ ${#SCENARIOS[@]} -gt 0 ]] || SCENARIOS=(rooms broadcast)

mkdir -p "$RESULTS"
STAMP=$(date +%Y%m%d-%H%M%S)
REPORT=$RESULTS/bench-$STAMP.txt
JSONL=$RESULTS/bench-$STAMP.jsonl
log() { echo "$*" | tee -a "$REPORT"; }

# 10k connections need 10k descriptors in the generator and 10k in the edge:
# separate processes, each under the per-process limit. Raise the soft limit
# to the hard one where that is allowed.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
FDS=$(ulimit -n)

pids=()
cleanup() {
	for pid in "${pids[@]}"; do
		kill "$pid" 2>/dev/null || true
	done
	for pid in "${pids[@]}"; do
		wait "$pid" 2>/dev/null || true
	done
}
trap cleanup EXIT

EDGE_BIN=${EDGE_BIN:-}
if [[ -z $EDGE_BIN ]]; then
	echo "building bin/sensorcast"
	(cd "$ROOT/services" && go build -o "$BIN/sensorcast" ./cmd/sensorcast)
	EDGE_BIN=$BIN/sensorcast
fi
echo "building bin/sensorcast-load"
(cd "$ROOT/tests" && go build -o "$BIN/sensorcast-load" ./cmd/sensorcast-load)

wait_http() { # url, tries
	for _ in $(seq 1 "${2:-100}"); do
		if curl -fsS -o /dev/null "$1" 2>/dev/null; then return 0; fi
		sleep 0.1
	done
	echo "timed out waiting for $1" >&2
	return 1
}

log "# Sensorcast edge benchmark, $(date -u +%Y-%m-%dT%H:%M:%SZ)"
log "# $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')), $(free -g | awk '/Mem:/{print $2}') GB RAM, open files $FDS, $(go version | cut -d' ' -f3)"
log "# edge on core $EDGE_CPU; NATS (embedded) + generator on core $GEN_CPU; duration $DURATION, warm-up $WARMUP per step"
log "# load average at start: $(cut -d' ' -f1-3 /proc/loadavg) (the machine is shared: numbers are noisy)"

taskset -c "$GEN_CPU" "$BIN/sensorcast-load" --serve-nats "127.0.0.1:$NATS_PORT" >"$RESULTS/nats-$STAMP.log" 2>&1 &
NATS_PID=$!
pids+=("$NATS_PID")
# The server prints this line once JetStream and the room stream are ready,
# after its port opens.
for _ in $(seq 1 100); do
	grep -q "nats listening" "$RESULTS/nats-$STAMP.log" 2>/dev/null && break
	kill -0 "$NATS_PID" 2>/dev/null || break
	sleep 0.1
done
grep -q "nats listening" "$RESULTS/nats-$STAMP.log" 2>/dev/null ||
	{ echo "NATS did not start (port $NATS_PORT taken?): see $RESULTS/nats-$STAMP.log" >&2; exit 1; }

# With tracing on, the edge samples room messages at the ratio (they carry
# no trace context: every fan-out span is a root) and exports to the sink.
otel_env=()
if [[ $TRACING != off ]]; then
	taskset -c "$GEN_CPU" "$BIN/sensorcast-load" --serve-otlp "127.0.0.1:$OTLP_PORT" >"$RESULTS/otlp-$STAMP.log" 2>&1 &
	pids+=("$!")
	for _ in $(seq 1 100); do
		grep -q "otlp listening" "$RESULTS/otlp-$STAMP.log" 2>/dev/null && break
		sleep 0.1
	done
	grep -q "otlp listening" "$RESULTS/otlp-$STAMP.log" ||
		{ echo "the OTLP sink did not start: see $RESULTS/otlp-$STAMP.log" >&2; exit 1; }
	otel_env=(OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:$OTLP_PORT" OTEL_EXPORTER_OTLP_PROTOCOL=grpc
		OTEL_TRACES_SAMPLER=traceidratio OTEL_TRACES_SAMPLER_ARG="$TRACING")
	log "# tracing: the edge samples $TRACING of room messages, exported to an OTLP sink on core $GEN_CPU"
fi

start_edge() { # send-queue
	local queue=$1
	env "${otel_env[@]}" SENSORCAST_NATS_URL="nats://127.0.0.1:$NATS_PORT" \
		SENSORCAST_HTTP_ADDR="127.0.0.1:$EDGE_PORT" \
		SENSORCAST_JWT_SECRET="$SECRET" \
		SENSORCAST_LOG_LEVEL=warn \
		SENSORCAST_SEND_QUEUE="$queue" \
		taskset -c "$EDGE_CPU" "$EDGE_BIN" edge >>"$RESULTS/edge-$STAMP.log" 2>&1 &
	EDGE_PID=$!
	pids+=("$EDGE_PID")
	wait_http "http://127.0.0.1:$EDGE_PORT/readyz"
	sleep 0.5 # let the fresh process settle before the RSS baseline
	kill -0 "$EDGE_PID" 2>/dev/null || { echo "edge exited (port $EDGE_PORT taken?): see $RESULTS/edge-$STAMP.log" >&2; exit 1; }
}

stop_edge() {
	kill "$EDGE_PID" 2>/dev/null || true
	wait "$EDGE_PID" 2>/dev/null || true
}

run_scenario() { # label, send-queue, generator args...
	local label=$1 queue=$2
	shift 2
	log ""
	log "## $label (edge send queue $queue)"
	start_edge "$queue"
	local perf_pid=""
	if [[ $PERF == 1 ]] && command -v perf >/dev/null; then
		perf record -g -F 499 -p "$EDGE_PID" -o "$RESULTS/perf-$label-$STAMP.data" >/dev/null 2>&1 &
		perf_pid=$!
	fi
	local rc=0
	taskset -c "$GEN_CPU" "$BIN/sensorcast-load" \
		--edge "ws://127.0.0.1:$EDGE_PORT/api/v1/ws" --nats "nats://127.0.0.1:$NATS_PORT" \
		--jwt-secret "$SECRET" --edge-pid "$EDGE_PID" --nats-pid "$NATS_PID" \
		--duration "$DURATION" --warmup "$WARMUP" --label "$label" --out "$JSONL" "$@" \
		2>>"$RESULTS/generator-$STAMP.log" | tee -a "$REPORT" || rc=$?
	if [[ -n $perf_pid ]]; then
		kill -INT "$perf_pid" 2>/dev/null || true
		wait "$perf_pid" 2>/dev/null || true
		perf report -i "$RESULTS/perf-$label-$STAMP.data" --no-children --percent-limit 1.5 --stdio 2>/dev/null |
			grep -E '^ +[0-9.]+%' | head -40 >"$RESULTS/perf-$label-$STAMP.txt" || true
		log "(edge CPU profile: $RESULTS/perf-$label-$STAMP.txt)"
	fi
	stop_edge
	if [[ $rc != 0 ]]; then log "generator failed with exit code $rc (see $RESULTS/generator-$STAMP.log)"; fi
}

for s in "${SCENARIOS[@]}"; do
	case $s in
	smoke)
		run_scenario smoke 256 --conns 1000 --rooms 100 --rate 1000 --duration 5s --warmup 1s
		;;
	rooms)
		# 10 members per room: deliveries/s = 10 × room messages/s.
		run_scenario rooms-10k-1k 256 --conns 10000 --rooms 1000 --deliveries "$ROOMS_DELIVERIES"
		;;
	broadcast)
		# One room: deliveries/s = 5000 × room messages/s (100k/s = 20 msgs/s).
		run_scenario broadcast-5k "$BCAST_SEND_QUEUE" --conns 5000 --broadcast --deliveries "$BCAST_DELIVERIES"
		;;
	*)
		echo "unknown scenario $s (want smoke, rooms or broadcast)" >&2
		exit 2
		;;
	esac
done

log ""
log "# report: $REPORT; JSON lines: $JSONL; logs: $RESULTS/{edge,nats,generator}-$STAMP.log"
