#!/usr/bin/env bash
# Profile one worker serving logins under wrk (16 connections, the real argon2id cost): the CPU
# per login of each of the worker's threads (the event loop; the argon2 threads) and of
# PostgreSQL, over 10 s (bench/thread_cpu.py), then py-spy samples every thread for 12 s and
# bench/profile_summary.py prints where the event loop thread's time goes. Needs wrk and py-spy.
#   bash bench/profile_login.sh
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d)
port=18124
export DATA_DIR=$work/data JWT_SECRET=$(printf 'k%.0s' {1..40}) RATE_LIMIT_PER_MINUTE=100000000 \
    AUTH_RATE_LIMIT_PER_MINUTE=100000000 LOGIN_MAX_FAILURES=1000000 SHUTDOWN_DRAIN_SECONDS=0 LOG_LEVEL=INFO
uv run python -m service.cli serve --port $port > "$work/serve.log" 2>&1 &
server=$!
trap 'kill -TERM $server 2>/dev/null; wait $server 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 300); do curl -sf "localhost:$port/health/ready" >/dev/null && break; sleep 0.2; done
curl -s -XPOST "localhost:$port/api/auth/register" -H 'content-type: application/json' \
    -d '{"email":"profile@example.com","password":"profile-pass-123"}' >/dev/null
cat > "$work/login.lua" <<'LUA'
wrk.method = "POST"
wrk.body = "username=profile%40example.com&password=profile-pass-123"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
LUA
worker=$(pgrep -f "service.cli serve --port $port" | tail -1)
postgres=$(head -1 "$DATA_DIR/postgres/postmaster.pid")
url="http://127.0.0.1:$port/api/auth/login"
wrk -t1 -c16 -d3s -s "$work/login.lua" "$url" >/dev/null  # warm: connections, statements
uv run python bench/thread_cpu.py "$worker" "$postgres" -- wrk -t1 -c16 -d10s -s "$work/login.lua" "$url" \
    | grep -Ev "^ |Thread Stats|Running|Transfer"
py-spy record -p "$worker" -d 12 -r 250 --threads -f raw -o "$work/stacks.txt" --nonblocking >/dev/null 2>&1 &
spy=$!
wrk -t1 -c16 -d12s -s "$work/login.lua" "$url" | grep -E "Requests/sec"
wait $spy || true
uv run python bench/profile_summary.py "$work/stacks.txt" MainThread
