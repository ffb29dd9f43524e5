#!/usr/bin/env bash
# Start a local visdom server for --display_id > 0 (training works without one; see report/visualizer.py).
#
#   bash scripts/start_visdom.sh                 # http://127.0.0.1:8097
#   PORT=8098 bash scripts/start_visdom.sh       # then train with --display_port 8098
#   bash scripts/start_visdom.sh -env_path /tmp/visdom -bind_local   # extra args go to the server
#
# `python -m visdom.server` first downloads its web scripts and dies without network access;
# calling run_server.main directly uses the scripts shipped in the package.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
if [ -n "${PYTHON:-}" ]; then
    PY="$PYTHON"
elif [ -x "$ROOT/.venv/bin/python" ]; then
    PY="$ROOT/.venv/bin/python"
else
    PY=python3
fi
exec "$PY" -c "from visdom.server.run_server import main; main()" \
    -port "${PORT:-8097}" --hostname "${HOST:-127.0.0.1}" "$@"
