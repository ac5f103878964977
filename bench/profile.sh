#!/usr/bin/env bash
# Profile one worker serving the task list under wrk: py-spy samples the worker for 12 s and
# bench/profile_summary.py prints where the time goes. Needs wrk and py-spy (pip install py-spy).
#   bash bench/profile.sh            # task list, 64 connections
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d)
port=18123
export DATA_DIR=$work/data JWT_SECRET=$(printf 'k%.0s' {1..40}) RATE_LIMIT_PER_MINUTE=100000000 \
    SHUTDOWN_DRAIN_SECONDS=0 LOG_LEVEL=INFO
uv run python -m service.cli serve --port $port > "$work/serve.log" 2>&1 &
server=$!
trap 'kill -TERM $server 2>/dev/null; wait $server 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 100); do curl -sf "localhost:$port/health/ready" >/dev/null && break; sleep 0.2; done
user_id=$(curl -s -XPOST "localhost:$port/api/auth/register" -H 'content-type: application/json' \
    -d '{"email":"profile@example.com","password":"profile-pass-123"}' | python3 -c 'import sys,json;print(json.load(sys.stdin)["id"])')
token=$(curl -s -XPOST "localhost:$port/api/auth/login" -d 'username=profile@example.com&password=profile-pass-123' \
    | python3 -c 'import sys,json;print(json.load(sys.stdin)["access_token"])')
for _ in $(seq 20); do
    curl -s -XPOST "localhost:$port/api/$user_id/tasks" -H "authorization: Bearer $token" \
        -H 'content-type: application/json' -d '{"title":"t"}' >/dev/null
done
echo "wrk.headers[\"Authorization\"] = \"Bearer $token\"" > "$work/list.lua"
worker=$(pgrep -f "service.cli serve --port $port" | tail -1)
py-spy record -p "$worker" -d 12 -r 200 -f raw -o "$work/stacks.txt" --nonblocking >/dev/null 2>&1 &
spy=$!
wrk -t2 -c64 -d12s -s "$work/list.lua" "http://127.0.0.1:$port/api/$user_id/tasks" | grep -E "Requests/sec|Latency"
wait $spy || true
uv run python bench/profile_summary.py "$work/stacks.txt"
